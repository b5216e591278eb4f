#!/usr/bin/env bash
# One GPU call (2026-11-25, evening): the compiled step with AOTAutograd's activation memory budget instead
# of attention checkpointing (profiled: GPU time against wall time), then sampling with regional compile +
# CUDA graphs.   run: bash bench/calls/run13-compiled-budget-and-graphs.sh   (carry .whl/core)
source bench/device_setup.sh core
export OUT
timeout "${BUDGET_S:-285}" python3 bench/bench_unet.py --models sdvideo --variants compiled-budget --cases 2x16 \
  --steps 5 --warmup 3 --profile "$OUT/profile-compiled-budget-2x16.txt" --json "$OUT/unet-compiled-budget.json" 2>&1 \
  | grep -v Warning | grep '^{'
CASES=none SAMPLE=1 PER_RUN_S=${GRAPHS_S:-265} bash bench/run_unet_suite.sh "sdvideo:compiled-graphs"
