#!/usr/bin/env bash
# One GPU call (2026-11-26): the UNet's upsamplers alone in each form (dynamo's recompile limit raised: in run 69
# the later shapes had fallen back to eager), and the 2 x 16 step (light-1+2, block regions, 8-bit AdamW) with
# the upsamplers compiled as a matmul, as the 2 x 2 convolution, and as diffusers' interpolate + conv.
#   run: bash bench/calls/run70-subpixel-forms.sh   (carry .whl/core)
source bench/device_setup.sh core
echo "start $(date -u +%T)" >> "$OUT/log.txt"
N=4
T="--cases 2x16 --models sdvideo --optimizer adamw8bit --variants compiled-light-1+2-cl-blocks"
bench_turns run70 train-subpixel 570 $N $T &
bench_turns run70 train-subpixel-conv 570 $N $T --upsample subpixel-conv &
bench_turns run70 train-interpolate 570 $N $T --upsample interpolate &
( timeout 570 python3 bench/bench_upsample.py --only unet --turns /tmp/turns-run70-$N --processes $N \
    --json "$OUT/run70-upsample.json" > /tmp/run70-upsample.out 2>&1
  [ $? = 124 ] && touch /tmp/turns-run70-$N/ready-killed-upsample ) &
wait
bench_tails run70
cd "$OUT" && tar czf run70-bundle.tgz *.json* log.txt
grep -v "^W1126" log.txt | grep "^\[\|Error" | cut -c1-1500
