#!/usr/bin/env bash
# One GPU call (2026-11-26): run 40's training comparison in one process, one variant after the other:
# temporal attention as compiled tensor ops (the default now), then SDPA's kernels (the -sdpa-temporal variant
# switches the process over, so it comes second).
#   run: bash bench/calls/run41-temporal-attention-one-process.sh   (carry .whl/core)
source bench/device_setup.sh core
echo "start $(date -u +%T)" >> "$OUT/log.txt"
bench_turns run41 train 520 1 --models sdvideo --cases 2x16 --steps 10 --warmup 3 \
  --variants compiled-selective-cl,compiled-selective-cl-sdpa-temporal
bench_tails run41
cat "$OUT/log.txt"
