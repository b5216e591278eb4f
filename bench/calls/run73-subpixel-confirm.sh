#!/usr/bin/env bash
# One GPU call (2026-11-26): the 2 x 16 step as shipped (light-1+2, block regions, 8-bit AdamW, upsamplers as four
# 2 x 2 convolutions, compiled form per shape) in two processes, beside diffusers' interpolate + conv: how far the
# shipped step's time moves between processes of one call.
#   run: bash bench/calls/run73-subpixel-confirm.sh   (carry .whl/core)
source bench/device_setup.sh core
echo "start $(date -u +%T)" >> "$OUT/log.txt"
N=3
T="--cases 2x16 --models sdvideo --optimizer adamw8bit --variants compiled-light-1+2-cl-blocks"
bench_turns run73 train-subpixel-a 570 $N $T &
bench_turns run73 train-subpixel-b 570 $N $T &
bench_turns run73 train-interpolate 570 $N $T --upsample interpolate &
wait
bench_tails run73
cd "$OUT" && tar czf run73-bundle.tgz *.json* log.txt
grep -v "^W1126" log.txt | grep "^\[\|Error" | cut -c1-1500
