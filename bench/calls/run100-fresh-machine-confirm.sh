#!/usr/bin/env bash
# One GPU call (2026-11-27), on a fresh machine (run 99 ran on run 98's): the shipped code (all inference fusions)
# in three processes against one with only the fusions this session began with (linear-gelu, bias-after-matmul):
# guided 16-frame sampling (25 steps, CUDA graphs), compiling side by side and timing in turn.
#   run: bash bench/calls/run100-fresh-machine-confirm.sh   (carry .whl/core .whl/av .whl/tf)
source bench/device_setup.sh core av tf
echo "start $(date -u +%T)" >> "$OUT/log.txt"
S="--cases none --sample --sample-graphs --models sdvideo --variants compiled-cl-pair"
BEFORE="--fusions linear-gelu,bias-after-matmul"
mkdir -p /tmp/turns-run100-4
bench_turns run100 all-a 420 4 $S --fusions all &
bench_turns run100 before-a 420 4 $S $BEFORE &
bench_turns run100 all-b 420 4 $S --fusions all &
bench_turns run100 all-c 420 4 $S --fusions all &
wait
bench_tails run100
cd "$OUT" && tar czf run100-bundle.tgz run100-*.json* && rm -f run100-*.jsonl run100-*.json
grep -v "^W1127" log.txt | grep "^\[\|Error\|error\|smoke\|CUDA graphs" | cut -c1-800
