#!/usr/bin/env bash
# One GPU call (2026-11-26): the optimizer step alone after telling the one-launch 8-bit AdamW kernel that every
# address is 16-byte aligned (run 64 without: 4.39 ms; run 61, a launch per tensor: 3.73 ms).
#   run: bash bench/calls/run65-adamw8bit-aligned.sh   (carry .whl/core)
source bench/device_setup.sh core
echo "start $(date -u +%T)" >> "$OUT/log.txt"
timeout 150 python3 bench/bench_optimizer.py --optimizers adamw,adamw8bit --json "$OUT/run65-optimizer.json" 2>&1 \
  | grep -E '^\{|Error' >> "$OUT/log.txt"
cat "$OUT/log.txt"
