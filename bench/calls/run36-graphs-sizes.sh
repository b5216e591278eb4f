#!/usr/bin/env bash
# One GPU call (2026-11-26): 16-frame sampling through plain calls and CUDA graphs (GraphedUNet) at 512 px
# (64 x 64 latents) and 256 px (32 x 32), eager (NCHW) and compiled (the default compiled settings), one
# process timing one after the other: where launching kernels, not running them, limits a denoising step.
#   run: bash bench/calls/run36-graphs-sizes.sh   (carry .whl/core)
source bench/device_setup.sh core
echo "start $(date -u +%T)" >> "$OUT/log.txt"
bench_turns run36 sample 560 1 --models sdvideo --cases none --sample --sample-graphs --sample-latents 64,32 \
  --variants eager,compiled-selective-cl
bench_tails run36
cat "$OUT/log.txt"
