#!/usr/bin/env bash
# One GPU call (2026-11-26): cold compile time (first step, inductor and triton caches empty: one fresh cache
# folder per process) and step time at 2 x 16 with selective-2 checkpointing, block regions then layer
# regions, one process each, one after the other: whether blocks should be the training default.
#   run: bash bench/calls/run32-cold-compile.sh   (carry .whl/core)
source bench/device_setup.sh core
for variant in compiled-selective-2-cl-blocks compiled-selective-2-cl; do
  echo "=== $variant start $(date -u +%T)" >> "$OUT/log.txt"
  TORCHINDUCTOR_CACHE_DIR=/tmp/inductor-$variant TRITON_CACHE_DIR=/tmp/triton-$variant timeout 270 \
    python3 bench/bench_unet.py --models sdvideo --variants "$variant" --cases 2x16 --steps 6 --warmup 3 \
    --json "$OUT/run32-$variant.json" 2>&1 | grep -v Warning | grep -E '^\{|Error|GPU:' >> "$OUT/log.txt"
done
cat "$OUT/log.txt"
