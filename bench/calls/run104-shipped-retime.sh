#!/usr/bin/env bash
# One GPU call (2026-12-07, issue #27): sdvideo as shipped after the fast paths moved into `sdvideo/fast/`, re-timed
# against the performance table's targets: the 2 x 16 training step (light-1+2, block regions, 8-bit AdamW, as in
# run 74) and guided 16-frame sampling (`compiled-cl-pair`, CUDA graphs, as in run 101). The two processes compile
# side by side and time in turns (about 22 + 8 GiB). PEERS=1 adds diffusers' AnimateDiff tuned as in runs 74 and 101
# (sampling; and on a card of 120 GB or more its 43 GiB training step), for the table's ratios from one call.
#   run: [PEERS=1] [LIMIT=500] bash bench/calls/run104-shipped-retime.sh   (carry .whl/core)
source bench/device_setup.sh core
echo "start $(date -u +%T)" >> "$OUT/log.txt"
limit=${LIMIT:-500}
total_mib=$(nvidia-smi --query-gpu=memory.total --format=csv,noheader,nounits | head -n 1)
n=2
if [ -n "${PEERS:-}" ]; then n=3; if [ "${total_mib:-0}" -ge 120000 ]; then n=4; fi; fi
bench_turns run104 sdvideo-train "$limit" $n --cases 2x16 --models sdvideo --optimizer adamw8bit \
  --variants compiled-light-1+2-cl-blocks &
bench_turns run104 sdvideo-sample "$limit" $n --cases none --sample --sample-graphs --models sdvideo \
  --variants compiled-cl-pair &
if [ "$n" -ge 3 ]; then
  bench_turns run104 animatediff-sample "$limit" $n --cases none --sample --sample-graphs --models animatediff \
    --variants frozen-bf16-compiled --upsample interpolate &
fi
if [ "$n" = 4 ]; then
  bench_turns run104 animatediff-train "$limit" $n --cases 2x16 --models animatediff --optimizer adamw8bit \
    --variants frozen-bf16-compiled &
fi
wait
bench_tails run104
grep -v "^W[0-9]\{4\} " "$OUT/log.txt" | grep "^\[\|Error" | cut -c1-1500
