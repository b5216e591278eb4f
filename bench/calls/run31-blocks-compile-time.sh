#!/usr/bin/env bash
# One GPU call (2026-11-26): compile time (the first step's time, alone on the machine, fresh caches) and step
# time at 2 x 16 of block regions with selective-2 checkpointing, then of the default layer regions
# (selective); one process each, one after the other (the second finds the first's kernels in inductor's cache
# only where graphs coincide).
#   run: bash bench/calls/run31-blocks-compile-time.sh   (carry .whl/core)
source bench/device_setup.sh core
for variant in compiled-selective-2-cl-blocks compiled-selective-cl; do
  echo "=== $variant start $(date -u +%T)" >> "$OUT/log.txt"
  timeout 280 python3 bench/bench_unet.py --models sdvideo --variants "$variant" --cases 2x16 --steps 8 --warmup 3 \
    --json "$OUT/run31-$variant.json" 2>&1 | grep -v Warning | grep -E '^\{|Error|GPU:' >> "$OUT/log.txt"
done
cat "$OUT/log.txt"
