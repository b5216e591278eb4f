#!/usr/bin/env bash
# One GPU call (2026-11-26 session): one process per variant. The default compiled step profiled with
# call stacks (what are the 8 % of ATen elementwise kernels between the compiled regions?), then the
# compiled step without checkpointing (the ceiling that checkpointing costs), with timestamps around
# each (their compile time). Each process saved torch.compile's portable cache (torch.compiler.
# save_cache_artifacts) to $OUT for later calls: 91 and 141 MiB, over what a call may carry or bring back,
# so that option was removed from bench_unet.py again (this script ran with it).
#   run: bash bench/calls/run24-stacks-and-blocks.sh   (carry .whl/core)
source bench/device_setup.sh core
for variant in compiled-selective-cl compiled-cl; do
  echo "=== $variant start $(date -u +%T)"
  extra=(); [ "$variant" = compiled-selective-cl ] && extra=(--profile "$OUT/profile-stacks-$variant-2x16.txt" --profile-stacks)
  limit=250; [ "$variant" = compiled-selective-cl ] && limit=320
  timeout "$limit" python3 bench/bench_unet.py --models sdvideo --cases 2x16 --steps 8 --warmup 3 \
    --variants "$variant" --json "$OUT/run24.json" "${extra[@]}" 2>&1 \
    | grep -v Warning | grep -E '^\{|Error|GPU:|compile cache'
  echo "=== $variant end $(date -u +%T)"
done
