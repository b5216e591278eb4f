#!/usr/bin/env bash
# One GPU call (2026-11-26, after runs 24-29): sdvideo's default compiled step (selective checkpointing,
# channels-last with the convolution layouts of runs 27 and 29) at 2 x 16 and 16-frame sampling, beside the
# peers in the same call: AnimateDiff tuned (frozen bf16 + regional torch.compile) and stock (eager), and
# ModelScope eager at 2 x 5 (2 x 16 does not fit 80 GB). sdvideo and tuned AnimateDiff compile side by side
# and time in turn (bench/gpu_turns.py); then the stock peers alone (their memory would not fit beside them).
#   run: bash bench/calls/run30-side-by-side.sh   (carry .whl/core)
source bench/device_setup.sh core
T=/tmp/turns-$$
bench() {  # label, limit, processes, flags...
  local label=$1 limit=$2 processes=$3; shift 3
  timeout "$limit" python3 bench/bench_unet.py --turns "$T-$processes" --processes "$processes" --json "$OUT/run30-$label.json" "$@" \
    2>&1 | grep -v Warning | grep -E '^\{|Error|GPU:' | while read -r line; do echo "[$label $(date -u +%T)] $line"; done >> "$OUT/log.txt"
}
echo "start $(date -u +%T)" >> "$OUT/log.txt"
bench sdvideo 330 2 --models sdvideo --variants compiled-selective-cl --cases 2x16 --steps 8 --warmup 3 --sample &
bench animatediff-tuned 330 2 --models animatediff --variants frozen-bf16-compiled --cases 2x16 --steps 6 --warmup 3 --sample &
wait
echo "stock peers $(date -u +%T)" >> "$OUT/log.txt"
bench stock 240 1 --models animatediff,modelscope --variants eager --cases 2x16,2x5 --steps 5 --warmup 2 --sample
cat "$OUT/log.txt"
