#!/usr/bin/env bash
# One GPU call (2026-11-26): the 2 x 16 step (block regions, 8-bit AdamW) with the upsamplers as four 2 x 2
# convolutions in matmul form (compiled; `models/subpixel_upsample.py`) against diffusers' interpolate + conv,
# at light-1+2, and light-1+1 with subpixel. (Run 67's subpixel training ran out of memory beside the
# upsampler bench.)
#   run: bash bench/calls/run68-subpixel-training.sh   (carry .whl/core)
source bench/device_setup.sh core
echo "start $(date -u +%T)" >> "$OUT/log.txt"
N=3
T="--cases 2x16 --models sdvideo --optimizer adamw8bit"
bench_turns run68 train-light-1p2-subpixel 570 $N $T --variants compiled-light-1+2-cl-blocks &
bench_turns run68 train-light-1p2-interpolate 570 $N $T --variants compiled-light-1+2-cl-blocks --upsample interpolate &
bench_turns run68 train-light-1p1-subpixel 570 $N $T --variants compiled-light-1+1-cl-blocks &
wait
bench_tails run68
cat "$OUT/log.txt"
