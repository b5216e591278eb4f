#!/usr/bin/env bash
# One GPU call (2026-11-26): the light-2 checkpointing level (the top two levels' transformers recompute
# only norms, pointwise ops and the projections out of the residual stream) against selective-2 for the
# 2 x 16 step (block regions); guided sampling with the temporal convolution as a matmul on maps of <= 256
# pixels against cuDNN's 3-D convolution everywhere; regions on/off and kernel profiles of a 64 x 64
# spatio-temporal transformer and a 16 x 16 resnet.
#   run: bash bench/calls/run56-light-checkpointing-and-temporal-conv-matmul.sh   (carry .whl/core)
source bench/device_setup.sh core
echo "start $(date -u +%T)" >> "$OUT/log.txt"
N=5
S="--cases none --sample --sample-graphs --models sdvideo"
T="--cases 2x16 --models sdvideo"
bench_turns run56 train-light-2 570 $N $T --variants compiled-light-2-cl-blocks &
bench_turns run56 train-selective-2 570 $N $T --variants compiled-selective-2-cl-blocks &
bench_turns run56 samp-matmul 570 $N $S --variants compiled-cl-pair &
bench_turns run56 samp-conv3d 570 $N $S --variants compiled-cl-pair-conv3d &
( timeout 570 python3 bench/bench_regions.py --turns /tmp/turns-run56-$N --processes $N --json "$OUT/run56-regions.json" \
    --profile 'down_blocks\.0\.attentions\.0$|down_blocks\.2\.resnets\.0$|down_blocks\.1\.attentions\.0$' \
    --profile-out "$OUT/run56-profile-regions.txt" > /tmp/run56-regions.out 2>&1
  [ $? = 124 ] && touch /tmp/turns-run56-$N/ready-killed-regions ) &
wait
bench_tails run56
cat "$OUT/log.txt"
