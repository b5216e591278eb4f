#!/usr/bin/env bash
# One GPU call (2026-11-25, night): one process, variants one after another (no parallel compilation,
# whose concurrent autotuning made runs 15-16 noisy): the default compiled step (selective
# checkpointing, channels-last, layer regions) and the same with whole UNet blocks as regions.
#   run: bash bench/calls/run17-sequential.sh   (carry .whl/core)
source bench/device_setup.sh core
timeout "${LIMIT_S:-540}" python3 bench/bench_unet.py --models sdvideo --cases 2x16 --steps 8 --warmup 3 \
  --variants compiled-selective-cl,compiled-selective-cl-blocks --json "$OUT/run17.json" 2>&1 \
  | grep -v Warning | grep -E '^\{|Error|GPU:'
