#!/usr/bin/env bash
# One short GPU call (2026-11-25, evening): a compiled resnet region feeding a compiled transformer region at
# 320 channels x 64 x 64, 2 x 16 frames, with and without GradientInInputLayout (bench/bench_region_boundary.py).
#   run: bash bench/calls/run23-region-boundary.sh   (carry .whl/core)
source bench/device_setup.sh core
timeout "${LIMIT_S:-200}" python3 bench/bench_region_boundary.py --json "$OUT/run23-region-boundary.json" 2>&1 \
  | grep -v Warning | grep -E '^\{|Error'
