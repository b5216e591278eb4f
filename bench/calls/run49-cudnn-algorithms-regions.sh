#!/usr/bin/env bash
# One GPU call (2026-11-26): cuDNN's algorithm choice, and where a denoising call's time goes by region.
# The bench sets torch.backends.cudnn.benchmark; `sdvideo train`/`sample` did not. Same call, one process
# each: guided sampling (compiled layers, CFG pair, CUDA graphs) and the 2 x 16 step (selective-2, layers)
# with cuDNN benchmarking (the bench's default), without it (the product before this run), and benchmarking
# every algorithm (benchmark_limit 0); plus bench/bench_regions.py (each region timed alone, temporal
# layers on and off).
#   run: bash bench/calls/run49-cudnn-algorithms-regions.sh   (carry .whl/core)
source bench/device_setup.sh core
echo "start $(date -u +%T)" >> "$OUT/log.txt"
N=7
S="--cases none --sample --sample-graphs --models sdvideo"
T="--cases 2x16 --models sdvideo"
bench_turns run49 samp-bench 570 $N $S --variants compiled-cl-pair &
bench_turns run49 samp-nobench 570 $N $S --variants compiled-cl-pair-no-cudnn-benchmark &
bench_turns run49 samp-all 570 $N $S --variants compiled-cl-pair-cudnn-all &
bench_turns run49 train-bench 570 $N $T --variants compiled-selective-2-cl &
bench_turns run49 train-nobench 570 $N $T --variants compiled-selective-2-cl-no-cudnn-benchmark &
bench_turns run49 train-all 570 $N $T --variants compiled-selective-2-cl-cudnn-all &
( timeout 570 python3 bench/bench_regions.py --turns /tmp/turns-run49-$N --processes $N --json "$OUT/run49-regions.json" \
    > /tmp/run49-regions.out 2>&1; [ $? = 124 ] && touch /tmp/turns-run49-$N/ready-killed-regions ) &
wait
bench_tails run49
cat "$OUT/log.txt"
