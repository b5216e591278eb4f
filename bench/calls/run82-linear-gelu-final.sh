#!/usr/bin/env bash
# One GPU call (2026-11-26): the shipped code (the temporal feed-forward's first matmul with cuBLASLt's GELU
# epilogue in half-precision inference, models/fused_linear_gelu.py) against it switched off, guided 16-frame
# sampling (25 steps, CUDA graphs), two processes of each, compiling side by side and timing in turn; while they
# compile, the whole CLI on a tiny model on the GPU (bench/gpu_smoke.py: prepare, train, resume, sample with and
# without CUDA graphs), which the timings wait for.
#   run: bash bench/calls/run82-linear-gelu-final.sh   (carry .whl/core .whl/av .whl/tf)
source bench/device_setup.sh core av tf
echo "start $(date -u +%T)" >> "$OUT/log.txt"
S="--cases none --sample --sample-graphs --models sdvideo --variants compiled-cl-pair"
mkdir -p /tmp/turns-run82-5
(timeout 300 python3 bench/gpu_smoke.py --out /tmp/gpu-smoke > /tmp/run82-smoke.out 2>&1; \
 echo "smoke exit $? $(date -u +%T)" >> "$OUT/log.txt"; touch /tmp/turns-run82-5/ready-smoke) &
bench_turns run82 all-a 570 5 $S --fusions all &
bench_turns run82 none-a 570 5 $S --fusions none &
bench_turns run82 all-b 570 5 $S --fusions all &
bench_turns run82 none-b 570 5 $S --fusions none &
wait
grep -v Warning /tmp/run82-smoke.out | tail -n 25 >> "$OUT/log.txt"
bench_tails run82
cd "$OUT" && tar czf run82-bundle.tgz run82-* && rm -f run82-*.jsonl
grep -v "^W1126" log.txt | grep "^\[\|Error\|smoke\|CUDA graphs" | cut -c1-1500
