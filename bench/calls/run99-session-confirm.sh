#!/usr/bin/env bash
# One GPU call (2026-11-27): the shipped code (all inference fusions, with this session's GroupNorm from channel
# statistics and frame-major temporal tokens) against the same code with only the fusions the session began with
# (linear-gelu, bias-after-matmul): guided 16-frame sampling (25 steps, CUDA graphs), two processes of each,
# compiling side by side and timing in turn; meanwhile the whole CLI on a tiny model on the GPU (bench/gpu_smoke.py).
#   run: bash bench/calls/run99-session-confirm.sh   (carry .whl/core .whl/av .whl/tf)
source bench/device_setup.sh core av tf
echo "start $(date -u +%T)" >> "$OUT/log.txt"
S="--cases none --sample --sample-graphs --models sdvideo --variants compiled-cl-pair"
BEFORE="--fusions linear-gelu,bias-after-matmul"
mkdir -p /tmp/turns-run99-5
(timeout 300 python3 bench/gpu_smoke.py --out /tmp/gpu-smoke > /tmp/run99-smoke.out 2>&1; \
 echo "smoke exit $? $(date -u +%T)" >> "$OUT/log.txt"; touch /tmp/turns-run99-5/ready-smoke) &
bench_turns run99 all-a 420 5 $S --fusions all &
bench_turns run99 before-a 420 5 $S $BEFORE &
bench_turns run99 all-b 420 5 $S --fusions all &
bench_turns run99 before-b 420 5 $S $BEFORE &
wait
grep -v Warning /tmp/run99-smoke.out | tail -n 25 >> "$OUT/log.txt"
bench_tails run99
cd "$OUT" && tar czf run99-bundle.tgz run99-*.json* && rm -f run99-*.jsonl run99-*.json
grep -v "^W1127" log.txt | grep "^\[\|Error\|error\|smoke\|CUDA graphs" | cut -c1-800
