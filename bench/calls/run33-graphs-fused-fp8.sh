#!/usr/bin/env bash
# One GPU call (2026-11-26): 16-frame sampling through CUDA graphs (sdvideo.sampling.cuda_graphs.GraphedUNet,
# timed against the same compiled model's plain calls in each process), fused attention input projections
# (models/fused_attention.py) and torchao float8 linears, each in its own process; the 2 x 16 step with and
# without fused projections, one after the other in one process. The baseline's denoising step profiled.
# Its fused and float8 variants were removed from bench_unet.py afterwards (commit 7d4e3e5 has them).
#   run: bash bench/calls/run33-graphs-fused-fp8.sh   (carry .whl/core)
source bench/device_setup.sh core
echo "start $(date -u +%T)" >> "$OUT/log.txt"
S="--models sdvideo --cases none --sample --sample-graphs"
bench_turns run33 sample 570 4 $S --variants compiled-selective-cl --profile-sampling "$OUT/profile-sampling.txt" &
bench_turns run33 sample-fused 570 4 $S --variants compiled-selective-cl-fused &
bench_turns run33 sample-fp8 570 4 $S --variants compiled-selective-cl-fp8 &
bench_turns run33 train 570 4 --models sdvideo --variants compiled-selective-cl,compiled-selective-cl-fused \
  --cases 2x16 --steps 8 --warmup 3 &
wait
cat "$OUT/log.txt"
