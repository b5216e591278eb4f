#!/usr/bin/env bash
# One GPU call (2026-11-26): temporal convolution weights stored channels-last 3-D (to_channels_last) against
# plainly contiguous, for 16-frame sampling (run 27: cuDNN converted the temporal convolutions' activations in
# compiled inference graphs, 5 % of a denoising step) and the 2 x 16 step; the sampling of the new layout
# profiled. Four processes compile side by side and time in turn (bench/gpu_turns.py).
#   run: bash bench/calls/run29-temporal-weight-layout.sh   (carry .whl/core)
source bench/device_setup.sh core
T=/tmp/turns-$$
bench() {  # label, limit, flags...
  local label=$1 limit=$2; shift 2
  timeout "$limit" python3 bench/bench_unet.py --models sdvideo --turns "$T" --processes 4 --json "$OUT/run29-$label.json" "$@" \
    2>&1 | grep -v Warning | grep -E '^\{|Error|GPU:' | while read -r line; do echo "[$label $(date -u +%T)] $line"; done >> "$OUT/log.txt"
}
echo "start $(date -u +%T)" >> "$OUT/log.txt"
bench sample 560 --variants compiled-selective-cl --cases none --sample --profile-sampling "$OUT/profile-owners-sampling.txt" &
bench sample-plain 560 --variants compiled-selective-cl-plain-temporal-weights --cases none --sample &
bench train 560 --variants compiled-selective-cl --cases 2x16 --steps 8 --warmup 3 &
bench train-plain 560 --variants compiled-selective-cl-plain-temporal-weights --cases 2x16 --steps 8 --warmup 3 &
wait
cat "$OUT/log.txt"
