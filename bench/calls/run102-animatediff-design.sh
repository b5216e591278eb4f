#!/usr/bin/env bash
# One GPU call (2026-12-06, issue #29): the 2 x 16 step at 512 px (SD 1.5 size), all with sdvideo's 8-bit AdamW:
# sdvideo's AnimateDiff design (`inflate(unet, temporal_layers="animatediff")`: diffusers' motion modules in the
# VideoUNet, spatial frozen in bf16, compiled block regions, channels-last, motion modules recomputed:
# `--gradient-checkpointing temporal`), the same with LoRA rank 8 on its motion modules (only the adapters train,
# frozen motion weights fp32, `--gradient-checkpointing full`: the target is a peak <= 16 GiB), and diffusers' own
# UNetMotionModel tuned as in run 74 (frozen bf16 weights, regional compile, no checkpointing), measured today.
# Two phases, so the concurrent compiling steps' peaks never add up to more than one 80 GB card: the two sdvideo
# processes compile side by side (about 27 + 9 GiB estimated) and time in turns; then UNetMotionModel (43 GiB in
# run 74) alone, in the time left.
#   run: bash bench/calls/run102-animatediff-design.sh   (carry .whl/core)
source bench/device_setup.sh core
echo "start $(date -u +%T)" >> "$OUT/log.txt"
T="--cases 2x16 --optimizer adamw8bit"
total=${TOTAL:-565}  # seconds for the whole call (less where less device time is left)
phase1=$(( total * 330 / 565 ))
bench_turns run102 sdvideo-animatediff $phase1 2 $T --models sdvideo-animatediff --variants compiled-ckpt-temporal-cl-blocks &
bench_turns run102 sdvideo-animatediff-lora8 $phase1 2 $T --models sdvideo-animatediff --lora-rank 8 \
  --variants compiled-ckpt-full-cl-blocks &
wait
echo "phase 2 $(date -u +%T), ${SECONDS} s into the call" >> "$OUT/log.txt"
bench_turns run102 animatediff $((total - SECONDS)) 1 $T --models animatediff --variants frozen-bf16-compiled
bench_tails run102
grep -v "^W[0-9]\{4\} " "$OUT/log.txt" | grep "^\[\|Error\|phase" | cut -c1-1500
