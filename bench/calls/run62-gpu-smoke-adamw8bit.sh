#!/usr/bin/env bash
# One GPU call (2026-11-26): the whole CLI on a tiny model with sdvideo's 8-bit AdamW (bench/gpu_smoke.py:
# prepare -> train 5 steps (bf16 autocast, --optimizer adamw8bit) -> train --resume to 10 steps (the 8-bit
# states through the checkpoint) -> sample).
#   run: bash bench/calls/run62-gpu-smoke-adamw8bit.sh   (carry .whl/core .whl/av .whl/tf)
source bench/device_setup.sh core av tf
echo "start $(date -u +%T)" >> "$OUT/log.txt"
timeout 400 python3 bench/gpu_smoke.py --out /tmp/gpu-smoke 2>&1 | grep -v Warning | tail -n 60 >> "$OUT/log.txt"
echo "smoke done $(date -u +%T)" >> "$OUT/log.txt"
cat "$OUT/log.txt"
