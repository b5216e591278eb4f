#!/usr/bin/env bash
# One GPU call (2026-11-26): nearest 2x + 3 x 3 upsampling convolutions as four 2 x 2 convolutions
# (`models/subpixel_upsample.py`) against diffusers' interpolate + conv: the upsamplers alone; the 2 x 16 step
# (block regions, 8-bit AdamW) at light-1+2 with each, and light-1+1 with subpixel; guided sampling with graphs
# (UNet and end to end with the VAE decode) with each.
#   run: bash bench/calls/run67-subpixel-upsampling.sh   (carry .whl/core)
source bench/device_setup.sh core
echo "start $(date -u +%T)" >> "$OUT/log.txt"
N=6
S="--cases none --sample --sample-graphs --models sdvideo --variants compiled-cl-pair"
T="--cases 2x16 --models sdvideo --optimizer adamw8bit"
bench_turns run67 train-light-1p2-subpixel 570 $N $T --variants compiled-light-1+2-cl-blocks &
bench_turns run67 train-light-1p2-interpolate 570 $N $T --variants compiled-light-1+2-cl-blocks --upsample interpolate &
bench_turns run67 train-light-1p1-subpixel 570 $N $T --variants compiled-light-1+1-cl-blocks &
bench_turns run67 samp-subpixel 570 $N $S &
bench_turns run67 samp-interpolate 570 $N $S --upsample interpolate &
( timeout 570 python3 bench/bench_upsample.py --turns /tmp/turns-run67-$N --processes $N --json "$OUT/run67-upsample.json" \
    > /tmp/run67-upsample.out 2>&1
  [ $? = 124 ] && touch /tmp/turns-run67-$N/ready-killed-upsample ) &
wait
bench_tails run67
cat "$OUT/log.txt"
