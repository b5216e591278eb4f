#!/usr/bin/env bash
# One GPU call (2026-11-26): guided sampling (CFG pair, rotary tables per call, CUDA graphs) with whole UNet
# blocks as compiled regions (skip concatenations and the code between layers fused; never measured for
# sampling) against layers, each with and without coordinate-descent tuning of inductor's kernels.
#   run: bash bench/calls/run47-sampling-blocks.sh   (carry .whl/core)
source bench/device_setup.sh core
echo "start $(date -u +%T)" >> "$OUT/log.txt"
S="--models sdvideo --cases none --sample --sample-graphs"
bench_turns run47 layers 560 4 $S --variants compiled-cl-pair &
bench_turns run47 layers-cdt 560 4 $S --variants compiled-cl-pair-cdt &
bench_turns run47 blocks 560 4 $S --variants compiled-cl-blocks-pair &
bench_turns run47 blocks-cdt 560 4 $S --variants compiled-cl-blocks-pair-cdt &
wait
bench_tails run47
cat "$OUT/log.txt"
