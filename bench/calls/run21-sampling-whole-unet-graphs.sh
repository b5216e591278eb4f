#!/usr/bin/env bash
# One GPU call (2026-11-25, evening; code at commit f4d10b6, reverted after): sampling (16 frames, 25 steps, CFG) with the whole UNet as one compiled
# graph under CUDA graphs (mode "reduce-overhead"), then the default (layer regions) beside it, one process each.
#   run: bash bench/calls/run21-sampling-whole-unet-graphs.sh   (carry .whl/core)
source bench/device_setup.sh core
for variant in compiled-cl-unet-graphs compiled-selective-cl; do
  echo "=== $variant start $(date -u +%T)"
  timeout "${LIMIT_S:-270}" python3 bench/bench_unet.py --models sdvideo --cases none --sample \
    --variants "$variant" --json "$OUT/run21.json" 2>&1 | grep -v Warning | grep -E '^\{|Error|GPU:'
done
echo "=== end $(date -u +%T)"
