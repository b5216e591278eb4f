#!/usr/bin/env bash
# One GPU call (2026-11-25, evening): the temporal convolution as a (3, 1) 2-D convolution on channels-last
# frames (`conv_over_frames`) against cuDNN's (3, 1, 1) 3-D convolution, per layer (forward + backward and
# forward alone, with the compiled temporal transformer's kernel profile), then the default compiled step
# (selective checkpointing, channels-last, layer regions, now with the 2-D form) at 2 x 16 with sampling and a
# profile with call stacks. (Measured no faster per layer; the 2-D form was reverted after this run.)
#   run: bash bench/calls/run19-temporal-conv2d.sh   (carry .whl/core)
source bench/device_setup.sh core
echo "=== layers start $(date -u +%T)"
timeout 150 python3 bench/bench_temporal_layers.py --compile --json "$OUT/run19-temporal-layers.json" \
  --profile "$OUT/run19-profile-temporal-transformer-320x64.txt" 2>&1 | grep -v Warning | grep -E '^\{|Error'
echo "=== model start $(date -u +%T)"
timeout "${LIMIT_S:-400}" python3 bench/bench_unet.py --models sdvideo --cases 2x16 --sample --steps 8 --warmup 3 \
  --variants compiled-selective-cl --json "$OUT/run19.json" \
  --profile "$OUT/run19-profile-stacks-compiled-selective-cl-2x16.txt" --profile-stacks 2>&1 \
  | grep -v Warning | grep -E '^\{|Error|GPU:'
echo "=== end $(date -u +%T)"
