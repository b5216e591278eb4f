#!/usr/bin/env bash
# One GPU call (2026-11-26): the checkpointing ladder at 2 x 16 with the channels-last convolution backward
# (run 27) and the new matmul peak (best of three sizes): process A, one after the other, selective (the
# default), none, selective-2 and selective-1; beside it, compiling in parallel and timing in turn
# (bench/gpu_turns.py): B block regions at 2 x 16, C sampling, D the default at 2 x 5 and 1 x 64 (memory).
#   run: bash bench/calls/run28-checkpointing-ladder.sh   (carry .whl/core)
source bench/device_setup.sh core
T=/tmp/turns-$$
bench() {  # label, limit, flags...
  local label=$1 limit=$2; shift 2
  timeout "$limit" python3 bench/bench_unet.py --models sdvideo --turns "$T" --processes 4 --json "$OUT/run28-$label.json" "$@" \
    2>&1 | grep -v Warning | grep -E '^\{|Error|GPU:' | while read -r line; do echo "[$label $(date -u +%T)] $line"; done >> "$OUT/log.txt"
}
echo "start $(date -u +%T)" >> "$OUT/log.txt"
bench ladder 575 --variants compiled-selective-cl,compiled-cl,compiled-selective-2-cl,compiled-selective-1-cl --cases 2x16 \
  --steps 8 --warmup 3 &
bench blocks 575 --variants compiled-selective-cl-blocks --cases 2x16 --steps 8 --warmup 3 &
bench sample 575 --variants compiled-selective-cl --cases none --sample &
bench small 575 --variants compiled-selective-cl --cases 2x5,1x64 --steps 6 --warmup 3 &
wait
cat "$OUT/log.txt"
