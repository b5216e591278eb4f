#!/usr/bin/env bash
# One GPU call (2026-11-26): 16-frame sampling with torchao float8 linears (weights and activations e4m3,
# per-row scales; bench_unet.py quantize_linears_fp8) against the same settings in bf16, one process timing
# one variant after the other, each through plain calls and CUDA graphs.
# Its float8 variant was removed from bench_unet.py afterwards (commit 7d4e3e5 has it).
#   run: bash bench/calls/run35-fp8-sampling.sh   (carry .whl/core)
source bench/device_setup.sh core
echo "start $(date -u +%T)" >> "$OUT/log.txt"
bench_turns run35 sample 540 1 --models sdvideo --cases none --sample --sample-graphs \
  --variants compiled-selective-cl,compiled-selective-cl-fp8
bench_tails run35
cat "$OUT/log.txt"
