#!/usr/bin/env bash
# One GPU call (2026-11-25, night): sdvideo's new default compiled step (selective checkpointing,
# channels-last, checkpoint inside each compiled transformer) at 2 x 16, 2 x 5 and 1 x 64 frames and
# 16-frame sampling channels-last and not, five processes compiling side by side and timing one at a
# time (bench/gpu_turns.py); then the peers, eager, each alone: AnimateDiff and ModelScope.
#   run: bash bench/calls/run16-channels-last-and-peers.sh   (carry .whl/core)
source bench/device_setup.sh core
T=/tmp/turns-$$ R=/tmp/rows-$$
mkdir -p "$R"
bench() {  # model, variant, cases, processes, extra flags...
  local model=$1 variant=$2 cases=$3 processes=$4; shift 4
  timeout "${LIMIT_S:-330}" python3 bench/bench_unet.py --models "$model" --variants "$variant" --cases "$cases" \
    --steps 5 --warmup 3 --turns "$T-$processes" --processes "$processes" --json "$R/$model-$variant-$cases.json" "$@" \
    2>&1 | grep -v Warning | grep -E '^\{|Error|GPU:' | sed "s/^/[$model $variant $cases] /" >> "$OUT/log.txt"
}
bench sdvideo compiled-selective-cl 2x16 5 --profile "$OUT/profile-compiled-selective-cl-2x16.txt" &
bench sdvideo compiled-selective-cl 2x5 5 &
bench sdvideo compiled-selective-cl 1x64 5 &
bench sdvideo compiled-selective-cl none 5 --sample &
bench sdvideo compiled-selective none 5 --sample &
wait
echo "=== peers $(date -u +%T)" >> "$OUT/log.txt"
LIMIT_S=150 bench animatediff eager 2x16,2x5 1 --sample
LIMIT_S=110 bench modelscope eager 2x5 1 --sample
cat "$R"/*.jsonl > "$OUT/run16.jsonl"
cat "$OUT/log.txt"
