#!/usr/bin/env bash
# One short GPU call (2026-11-25, evening): the temporal convolution and the compiled temporal transformer at
# 320 channels x 64 x 64, forward + backward, profiled with the call sites of each launching operator: where
# the ATen copy kernels seen in every profile (8 % of the step in run 16) come from.
#   run: bash bench/calls/run22-copy-call-sites.sh   (carry .whl/core)
source bench/device_setup.sh core
timeout "${LIMIT_S:-200}" python3 bench/bench_temporal_layers.py --compile --shapes 1 --json "$OUT/run22-temporal-layers.json" \
  --profile "$OUT/run22-profile-stacks-320x64.txt" 2>&1 | grep -v Warning | grep -E '^\{|Error'
