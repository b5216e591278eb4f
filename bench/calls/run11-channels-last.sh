#!/usr/bin/env bash
# One GPU call (2026-11-25, evening): channels-last against the same model in NCHW, side by side.
#   run: bash bench/calls/run11-channels-last.sh   (carry .whl/core; writes under $OUT)
source bench/device_setup.sh core
export OUT
timeout 60 python3 bench/bench_temporal_layers.py --json "$OUT/temporal_layers.json" 2>&1 | grep -v Warning | tail -n 6
CASES=2x16,2x5 SAMPLE=1 PER_RUN_S=115 bash bench/run_unet_suite.sh "sdvideo:eager,eager-cl"
CASES=2x16,2x5 PER_RUN_S=70 bash bench/run_unet_suite.sh "sdvideo:ckpt-attention-cl"
CASES=2x16 PER_RUN_S=${COMPILED_S:-200} bash bench/run_unet_suite.sh "sdvideo:compiled-ckpt-attention-cl"
