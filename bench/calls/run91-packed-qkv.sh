#!/usr/bin/env bash
# One GPU call (2026-11-27): spatial self-attention's q, k, v from one matmul over the stacked weights in compiled
# inference (models/packed_qkv_attention.py), guided 16-frame sampling (25 steps, CUDA graphs) with all fusions
# against all but that one, two processes of each, compiling side by side and timing in turn; while they
# compile, the whole CLI on a tiny model on the GPU (bench/gpu_smoke.py).
# Record of the call as run: the code of commit f046593; models/packed_qkv_attention.py
# and --fusions packed-qkv were removed in the next commit (bench/PERFORMANCE_NOTES.md).
#   run: bash bench/calls/run91-packed-qkv.sh   (carry .whl/core .whl/av .whl/tf)
source bench/device_setup.sh core av tf
echo "start $(date -u +%T)" >> "$OUT/log.txt"
S="--cases none --sample --sample-graphs --models sdvideo --variants compiled-cl-pair"
mkdir -p /tmp/turns-run91-5
(timeout 300 python3 bench/gpu_smoke.py --out /tmp/gpu-smoke > /tmp/run91-smoke.out 2>&1; \
 echo "smoke exit $? $(date -u +%T)" >> "$OUT/log.txt"; touch /tmp/turns-run91-5/ready-smoke) &
bench_turns run91 all-a 450 5 $S --fusions all &
bench_turns run91 noqkv-a 450 5 $S --fusions linear-gelu,bias-after-matmul &
bench_turns run91 all-b 450 5 $S --fusions all &
bench_turns run91 noqkv-b 450 5 $S --fusions linear-gelu,bias-after-matmul &
wait
grep -v Warning /tmp/run91-smoke.out | tail -n 25 >> "$OUT/log.txt"
bench_tails run91
cd "$OUT" && tar czf run91-bundle.tgz run91-* && rm -f run91-*.jsonl
grep -v "^W1127" log.txt | grep "^\[\|Error\|error\|smoke\|CUDA graphs" | cut -c1-700
