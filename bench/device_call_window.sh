#!/usr/bin/env bash
# One GPU call (2026-11-25, evening): the temporal convolution as window products against cuDNN's 3-D
# convolution, in the layer micro-benchmark and in the whole model; then the compiled step, profiled.
#   run: bash bench/device_call_window.sh   (carry .whl/core; writes under $OUT)
source bench/device_setup.sh core
export OUT
timeout 100 python3 bench/bench_temporal_layers.py --compile --json "$OUT/temporal_layers.json" 2>&1 | grep -v Warning | tail -n 5
CASES=2x16 PER_RUN_S=60 bash bench/run_unet_suite.sh "sdvideo:eager-conv3d"
CASES=2x16,2x5 SAMPLE=1 PER_RUN_S=110 bash bench/run_unet_suite.sh "sdvideo:eager"
timeout "${COMPILED_S:-260}" python3 bench/bench_unet.py --models sdvideo --variants compiled-ckpt-attention --cases 2x16 \
  --steps 5 --warmup 3 --profile "$OUT/profile-compiled-ckpt-attention-2x16.txt" --json "$OUT/unet-compiled.json" 2>&1 \
  | grep -v Warning | grep '^{'
