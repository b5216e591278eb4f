#!/usr/bin/env bash
# One GPU call (2026-11-26, after runs 24-29): sdvideo's default compiled step (selective checkpointing,
# channels-last with the convolution layouts of runs 27 and 29) at 2 x 16 and 16-frame sampling, beside the
# peers in the same call: AnimateDiff tuned (frozen bf16 + regional torch.compile) and stock (eager), and
# ModelScope eager at 2 x 5 (2 x 16 does not fit 80 GB). Three processes compile side by side and time in
# turn (bench/gpu_turns.py).
#   run: bash bench/calls/run30-side-by-side.sh   (carry .whl/core)
source bench/device_setup.sh core
T=/tmp/turns-$$
bench() {  # label, limit, flags...
  local label=$1 limit=$2; shift 2
  timeout "$limit" python3 bench/bench_unet.py --turns "$T" --processes 3 --json "$OUT/run30-$label.json" "$@" \
    2>&1 | grep -v Warning | grep -E '^\{|Error|GPU:' | while read -r line; do echo "[$label $(date -u +%T)] $line"; done >> "$OUT/log.txt"
}
echo "start $(date -u +%T)" >> "$OUT/log.txt"
bench sdvideo 570 --models sdvideo --variants compiled-selective-cl --cases 2x16 --steps 8 --warmup 3 --sample &
bench animatediff-tuned 570 --models animatediff --variants frozen-bf16-compiled --cases 2x16 --steps 6 --warmup 3 --sample &
bench stock 570 --models animatediff,modelscope --variants eager --cases 2x16,2x5 --steps 5 --warmup 2 --sample &
wait
cat "$OUT/log.txt"
