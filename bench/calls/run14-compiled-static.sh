#!/usr/bin/env bash
# One GPU call (2026-11-25, evening): the compiled step with static-shape regions (compile_regions now passes
# dynamic=False), attention checkpointing, profiled (GPU time against wall time), then 16-frame sampling.
#   run: bash bench/calls/run14-compiled-static.sh   (carry .whl/core)
source bench/device_setup.sh core
export OUT
timeout "${LIMIT_S:-470}" python3 bench/bench_unet.py --models sdvideo --variants compiled-ckpt-attention --cases 2x16 \
  --steps 5 --warmup 3 --sample --profile "$OUT/profile-compiled-static-ckpt-attention-2x16.txt" \
  --json "$OUT/unet-compiled-static.json" 2>&1 | grep -v Warning | grep -E '^\{|Error'
