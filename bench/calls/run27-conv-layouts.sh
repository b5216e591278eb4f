#!/usr/bin/env bash
# One GPU call (2026-11-26): LeanConv2d.channels_last_io and the temporal convolution's output gradient
# layout (cuDNN's convolution backward copied its input and output gradient to channels-last, 20 ms of a
# 2 x 16 step in run 26; sampling's temporal convolutions converted layouts, 5 % of a denoising step).
# Process A, one after the other: the default step (profiled, owners of copy kernels) and the step as
# before (plain-conv-layout). Processes B and C: 16-frame sampling, default (profiled) and as before.
# They compile side by side and time in turn (bench/gpu_turns.py).
#   run: bash bench/calls/run27-conv-layouts.sh   (carry .whl/core)
source bench/device_setup.sh core
T=/tmp/turns-$$
bench() {  # label, limit, flags...
  local label=$1 limit=$2; shift 2
  timeout "$limit" python3 bench/bench_unet.py --models sdvideo --turns "$T" --processes 3 --json "$OUT/run27-$label.json" "$@" \
    2>&1 | grep -v Warning | grep -E '^\{|Error|GPU:' | while read -r line; do echo "[$label $(date -u +%T)] $line"; done >> "$OUT/log.txt"
}
echo "start $(date -u +%T)" >> "$OUT/log.txt"
bench train 570 --variants compiled-selective-cl,compiled-selective-cl-plain-conv-layout --cases 2x16 --steps 8 --warmup 3 \
  --profile-stacks --profile "$OUT/profile-owners-train-2x16.txt" &
bench sample 570 --variants compiled-selective-cl --cases none --sample --profile-sampling "$OUT/profile-owners-sampling.txt" &
bench sample-plain 570 --variants compiled-selective-cl-plain-conv-layout --cases none --sample &
wait
cat "$OUT/log.txt"
