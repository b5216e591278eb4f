#!/usr/bin/env bash
# One GPU call (2026-11-26): rotary tables made once per UNet call and handed to the compiled regions,
# against computing them inside each region (run 45's profile: inductor fused the tables into the kernels
# applying them, pow/cos/sin per element, 4 % of a denoising step): guided sampling (with the CFG pair and
# CUDA graphs) and the 2 x 16 step at selective-2 with block regions (the fastest under 22 GiB, run 42).
#   run: bash bench/calls/run46-rotary-tables.sh   (carry .whl/core)
source bench/device_setup.sh core
echo "start $(date -u +%T)" >> "$OUT/log.txt"
S="--models sdvideo --cases none --sample --sample-graphs"
T="--models sdvideo --cases 2x16 --steps 10 --warmup 3"
bench_turns run46 sample-tables 560 4 $S --variants compiled-cl-pair &
bench_turns run46 sample-inline 560 4 $S --variants compiled-cl-pair-inline-rotary &
bench_turns run46 train-tables 560 4 $T --variants compiled-selective-2-cl-blocks &
bench_turns run46 train-inline 560 4 $T --variants compiled-selective-2-cl-blocks-inline-rotary &
wait
bench_tails run46
cat "$OUT/log.txt"
