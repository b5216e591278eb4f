#!/usr/bin/env bash
# One GPU call (2026-11-26): the 2 x 16 step side by side, both with sdvideo's 8-bit AdamW: sdvideo as shipped
# (light-1+2, block regions, subpixel upsamplers) against AnimateDiff's UNetMotionModel tuned (frozen bf16 weights,
# regional compile).
#   run: bash bench/calls/run74-peers-training-final.sh   (carry .whl/core)
source bench/device_setup.sh core
echo "start $(date -u +%T)" >> "$OUT/log.txt"
bench_turns run74 sdvideo 570 2 --cases 2x16 --models sdvideo --optimizer adamw8bit --variants compiled-light-1+2-cl-blocks &
bench_turns run74 animatediff 570 2 --cases 2x16 --models animatediff --optimizer adamw8bit --variants frozen-bf16-compiled &
wait
bench_tails run74
grep -v "^W1126" "$OUT/log.txt" | grep "^\[\|Error" | cut -c1-1500
