#!/usr/bin/env bash
# One GPU call (2026-11-27): guided 16-frame sampling (25 steps, CUDA graphs) of the shipped code with inductor
# settings that change its generated kernels -- aggressive_fusion, coordinate_descent_tuning (block sizes of
# the memory-bound kernels tuned) -- against the defaults twice; four processes compiling side by side and timing
# in turn (bench_unet.py --inductor).
#   run: bash bench/calls/run87-inductor-settings.sh   (carry .whl/core)
source bench/device_setup.sh core
echo "start $(date -u +%T)" >> "$OUT/log.txt"
S="--cases none --sample --sample-graphs --models sdvideo"
mkdir -p /tmp/turns-run87-4
bench_turns run87 base-a 570 4 $S --variants compiled-cl-pair &
bench_turns run87 aggressive 570 4 $S --variants compiled-cl-pair --inductor aggressive_fusion=True &
bench_turns run87 base-b 570 4 $S --variants compiled-cl-pair &
bench_turns run87 cdt 570 4 $S --variants compiled-cl-pair-cdt &
wait
bench_tails run87
cd "$OUT" && tar czf run87-bundle.tgz run87-* && rm -f run87-*.jsonl
grep -v "^W1127" log.txt | grep "^\[\|Error\|error" | cut -c1-700
