#!/usr/bin/env bash
# One GPU call (2026-11-26): the 2 x 16 training step side by side with AnimateDiff, both with sdvideo's 8-bit
# AdamW (the same optimizer): sdvideo with light-1+2 checkpointing and block regions (a 24 GB card's `auto`),
# AnimateDiff's UNetMotionModel with frozen bf16 weights and regional compile (its tuned setting, run 53).
#   run: bash bench/calls/run63-peers-training-8bit.sh   (carry .whl/core)
source bench/device_setup.sh core
echo "start $(date -u +%T)" >> "$OUT/log.txt"
bench_turns run63 sdvideo 570 2 --cases 2x16 --models sdvideo --optimizer adamw8bit --variants compiled-light-1+2-cl-blocks &
bench_turns run63 animatediff 570 2 --cases 2x16 --models animatediff --optimizer adamw8bit --variants frozen-bf16-compiled &
wait
bench_tails run63
cat "$OUT/log.txt"
