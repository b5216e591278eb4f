#!/usr/bin/env bash
# One GPU call (2026-11-26): which operators launch the ATen copy kernels of the 2 x 16 step (not the 10
# output-gradient copies AOTAutograd makes, run 25) and cuDNN's layout conversions in sampling (5 % of a
# denoising step, run 25): kernel profiles listing each such kernel's operator, callers and input
# shapes/strides. Three processes compile side by side and time in turn (bench/gpu_turns.py): the
# default step profiled, sampling profiled, block regions (their step time; timestamps give compile time).
#   run: bash bench/calls/run26-copy-owners.sh   (carry .whl/core)
source bench/device_setup.sh core
T=/tmp/turns-$$
bench() {  # label, limit, flags...
  local label=$1 limit=$2; shift 2
  timeout "$limit" python3 bench/bench_unet.py --models sdvideo --turns "$T" --processes 3 --json "$OUT/run26-$label.json" "$@" \
    2>&1 | grep -v Warning | grep -E '^\{|Error|GPU:' | while read -r line; do echo "[$label $(date -u +%T)] $line"; done >> "$OUT/log.txt"
}
echo "start $(date -u +%T)" >> "$OUT/log.txt"
bench train 560 --variants compiled-selective-cl --cases 2x16 --steps 6 --warmup 3 --profile-stacks \
  --profile "$OUT/profile-owners-train-2x16.txt" &
bench sample 560 --variants compiled-selective-cl --cases none --sample --profile-sampling "$OUT/profile-owners-sampling.txt" &
bench blocks 560 --variants compiled-selective-cl-blocks --cases 2x16 --steps 6 --warmup 3 &
wait
cat "$OUT/log.txt"
