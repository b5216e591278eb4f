#!/usr/bin/env bash
# One GPU call (2026-11-26): the whole CLI on a tiny model with the subpixel upsamplers (bench/gpu_smoke.py
# --compiled: prepare -> train 5 steps -> resume to 10 steps with block regions compiled -> sample with layers
# compiled, CUDA graphs against plain calls).
#   run: bash bench/calls/run72-gpu-smoke-compiled.sh   (carry .whl/core .whl/av .whl/tf)
source bench/device_setup.sh core av tf
echo "start $(date -u +%T)" >> "$OUT/log.txt"
timeout 500 python3 bench/gpu_smoke.py --compiled --out /tmp/gpu-smoke 2>&1 | grep -v Warning | tail -n 60 >> "$OUT/log.txt"
echo "smoke done $(date -u +%T)" >> "$OUT/log.txt"
cat "$OUT/log.txt"
