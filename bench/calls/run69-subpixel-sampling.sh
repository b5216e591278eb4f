#!/usr/bin/env bash
# One GPU call (2026-11-26): guided 16-frame sampling with graphs, the upsamplers as diffusers' interpolate + conv,
# as sdvideo's four 2 x 2 convolutions compiled in matmul form, and compiled as the 2 x 2 convolution; the
# upsamplers alone in each form (eager and compiled, forward and forward + input gradient).
#   run: bash bench/calls/run69-subpixel-sampling.sh   (carry .whl/core)
source bench/device_setup.sh core
echo "start $(date -u +%T)" >> "$OUT/log.txt"
N=4
S="--cases none --sample --sample-graphs --models sdvideo --variants compiled-cl-pair"
bench_turns run69 samp-interpolate 570 $N $S --upsample interpolate &
bench_turns run69 samp-subpixel 570 $N $S &
bench_turns run69 samp-subpixel-conv 570 $N $S --upsample subpixel-conv &
( timeout 570 python3 bench/bench_upsample.py --turns /tmp/turns-run69-$N --processes $N --json "$OUT/run69-upsample.json" \
    > /tmp/run69-upsample.out 2>&1
  [ $? = 124 ] && touch /tmp/turns-run69-$N/ready-killed-upsample ) &
wait
bench_tails run69
cat "$OUT/log.txt"
cd "$OUT" && tar czf run69-bundle.tgz *.json* log.txt
