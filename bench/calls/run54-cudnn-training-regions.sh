#!/usr/bin/env bash
# One GPU call (2026-11-26): cuDNN benchmarking for the 2 x 16 step (selective-2, layer regions), on (the
# bench's default, and `sdvideo train`'s since run 49) and off (the product before), side by side (run 49's
# pair ran out of memory beside five other processes); and bench/bench_regions.py again with the fused
# Triton temporal attention (run 49's breakdown was before it).
#   run: bash bench/calls/run54-cudnn-training-regions.sh   (carry .whl/core)
source bench/device_setup.sh core
echo "start $(date -u +%T)" >> "$OUT/log.txt"
N=3
T="--cases 2x16 --models sdvideo"
bench_turns run54 train-bench 570 $N $T --variants compiled-selective-2-cl &
bench_turns run54 train-nobench 570 $N $T --variants compiled-selective-2-cl-no-cudnn-benchmark &
( timeout 570 python3 bench/bench_regions.py --turns /tmp/turns-run54-$N --processes $N --json "$OUT/run54-regions.json" \
    > /tmp/run54-regions.out 2>&1; [ $? = 124 ] && touch /tmp/turns-run54-$N/ready-killed-regions ) &
wait
bench_tails run54
cat "$OUT/log.txt"
