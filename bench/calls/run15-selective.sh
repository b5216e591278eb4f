#!/usr/bin/env bash
# One GPU call (2026-11-25, night): selective activation checkpointing (keep the long self-attention
# outputs, recompute the rest of each transformer) with the checkpoint now inside each compiled
# transformer region; beside it the same regions with whole-transformer recomputation, channels-last,
# and 16-frame sampling. Four processes compile side by side, then time one at a time
# (bench/gpu_turns.py); then every SDPA kernel at the step's attention shapes.
#   run: bash bench/calls/run15-selective.sh   (carry .whl/core)
source bench/device_setup.sh core
T=/tmp/turns-$$ R=/tmp/rows-$$
mkdir -p "$R"
one() {  # variant, cases, extra flags...
  local variant=$1 cases=$2; shift 2
  timeout "${LIMIT_S:-480}" python3 bench/bench_unet.py --models sdvideo --variants "$variant" --cases "$cases" \
    --steps 5 --warmup 3 --turns "$T" --processes 4 --json "$R/$variant-$cases.json" "$@" 2>&1 \
    | grep -v Warning | grep -E '^\{|Error|GPU:' | sed "s/^/[$variant $cases] /" >> "$OUT/log.txt"
}
one compiled-selective 2x16 --profile "$OUT/profile-compiled-selective-2x16.txt" &
one compiled-ckpt-attention 2x16 &
one compiled-selective-cl 2x16 &
one compiled-selective none --sample &
wait
cat "$R"/*.jsonl > "$OUT/run15.jsonl"
timeout 90 python3 bench/bench_attention.py --json "$OUT/attention.json" 2>&1 | grep -v Warning | tail -n 30
cat "$OUT/log.txt"
