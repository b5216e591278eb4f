#!/usr/bin/env bash
# One GPU call (2026-11-26): run 24 found 181 ATen copies a 2 x 16 step (6 % of it) in the backward of the
# compiled regions. Process A, one after the other: the default step with the resnets' input gradient
# layout hook, then without it (as before), each counting AOTAutograd's output-gradient copies. Process B,
# compiling beside A and timing in turn (bench/gpu_turns.py): 16-frame sampling with a kernel profile of
# one denoising step.
# The hook (a forward pre-hook putting GradientInInputLayout at every ResnetBlock2D input) and its bench variant
# were removed after this call: output-gradient copies 10 a step with and without it, step 0.338 vs 0.328 s.
#   run: bash bench/calls/run25-resnet-gradient-layout.sh   (carry .whl/core; needs the hook back)
source bench/device_setup.sh core
T=/tmp/turns-$$
bench() {  # label, limit, flags...
  local label=$1 limit=$2; shift 2
  timeout "$limit" python3 bench/bench_unet.py --models sdvideo --turns "$T" --processes 2 --json "$OUT/run25-$label.json" "$@" \
    2>&1 | grep -v Warning | grep -E '^\{|Error|GPU:' | sed "s/^/[$label $(date -u +%T)] /" >> "$OUT/log.txt"
}
bench train 560 --variants compiled-selective-cl,compiled-selective-cl-plain-resnet-grad --cases 2x16 --steps 8 --warmup 3 &
bench sample 560 --variants compiled-selective-cl --cases none --sample --profile-sampling "$OUT/profile-sampling-step.txt" &
wait
cat "$OUT/log.txt"
