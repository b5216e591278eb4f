#!/usr/bin/env bash
# One GPU call (2026-11-26): sdvideo's upsamplers as shipped (four 2 x 2 convolutions; compiled as the matmul for
# >= 1,024 channels on >= 256-pixel maps, else as the convolution) against diffusers' interpolate + conv: the
# 2 x 16 step (light-1+2, block regions, 8-bit AdamW) and guided 16-frame sampling with graphs.
#   run: bash bench/calls/run71-subpixel-final.sh   (carry .whl/core)
source bench/device_setup.sh core
echo "start $(date -u +%T)" >> "$OUT/log.txt"
N=4
T="--cases 2x16 --models sdvideo --optimizer adamw8bit --variants compiled-light-1+2-cl-blocks"
S="--cases none --sample --sample-graphs --models sdvideo --variants compiled-cl-pair"
bench_turns run71 train-subpixel 570 $N $T &
bench_turns run71 train-interpolate 570 $N $T --upsample interpolate &
bench_turns run71 samp-subpixel 570 $N $S &
bench_turns run71 samp-interpolate 570 $N $S --upsample interpolate &
wait
bench_tails run71
cd "$OUT" && tar czf run71-bundle.tgz *.json* log.txt
grep -v "^W1126" log.txt | grep "^\[\|Error" | cut -c1-1500
