#!/usr/bin/env bash
# One GPU call (2026-11-27): run 89's sampling comparison again on another machine -- guided 16-frame sampling
# (25 steps, CUDA graphs) with all fusions (the transformers' biases after the matmul included) against all but
# that one, two processes of each, compiling side by side and timing in turn.
#   run: bash bench/calls/run90-bias-after-matmul-confirm.sh   (carry .whl/core)
source bench/device_setup.sh core
echo "start $(date -u +%T)" >> "$OUT/log.txt"
S="--cases none --sample --sample-graphs --models sdvideo --variants compiled-cl-pair"
mkdir -p /tmp/turns-run90-4
bench_turns run90 all-a 420 4 $S --fusions all &
bench_turns run90 lg-a 420 4 $S --fusions linear-gelu &
bench_turns run90 all-b 420 4 $S --fusions all &
bench_turns run90 lg-b 420 4 $S --fusions linear-gelu &
wait
bench_tails run90
cd "$OUT" && tar czf run90-bundle.tgz run90-* && rm -f run90-*.jsonl
grep -v "^W1127" log.txt | grep "^\[\|Error\|error" | cut -c1-700
