#!/usr/bin/env bash
# One GPU call (written 2026-11-25 for the next session, not yet run; run 19 found that `--profile-stacks` needed
# the profiler's verbose config to record call sites, fixed since): one process, the default compiled
# step profiled with call stacks (what are the 8 % of ATen elementwise kernels between the compiled
# regions?), then block regions with timestamps around their first step (their compile time).
#   run: bash bench/calls/run24-stacks-and-blocks.sh   (carry .whl/core)
source bench/device_setup.sh core
for variant in compiled-selective-cl compiled-selective-cl-blocks; do
  echo "=== $variant start $(date -u +%T)"
  extra=(); [ "$variant" = compiled-selective-cl ] && extra=(--profile "$OUT/profile-stacks-$variant-2x16.txt" --profile-stacks)
  timeout "${LIMIT_S:-270}" python3 bench/bench_unet.py --models sdvideo --cases 2x16 --steps 8 --warmup 3 \
    --variants "$variant" --json "$OUT/run24.json" "${extra[@]}" 2>&1 | grep -v Warning | grep -E '^\{|Error|GPU:'
  echo "=== $variant end $(date -u +%T)"
done
