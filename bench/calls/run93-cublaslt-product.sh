#!/usr/bin/env bash
# One GPU call (2026-11-27): the shipped code's guided 16-frame sampling (25 steps, CUDA graphs) with cuBLASLt
# for every matmul as `sdvideo sample` now sets it (bench_unet.py --blas cublaslt) against PyTorch's choice, two
# processes of each, compiling side by side and timing in turn; while they compile, the whole CLI on a tiny
# model on the GPU (bench/gpu_smoke.py; `sample` sets cuBLASLt).
# Record of the call as run: the code of commit 55f678f, whose `sample`
# set cuBLASLt (blas_backend.py); removed in the next commit (no difference here: bench/PERFORMANCE_NOTES.md).
#   run: bash bench/calls/run93-cublaslt-product.sh   (carry .whl/core .whl/av .whl/tf)
source bench/device_setup.sh core av tf
echo "start $(date -u +%T)" >> "$OUT/log.txt"
S="--cases none --sample --sample-graphs --models sdvideo --variants compiled-cl-pair"
mkdir -p /tmp/turns-run93-5
(timeout 300 python3 bench/gpu_smoke.py --out /tmp/gpu-smoke > /tmp/run93-smoke.out 2>&1; \
 echo "smoke exit $? $(date -u +%T)" >> "$OUT/log.txt"; touch /tmp/turns-run93-5/ready-smoke) &
bench_turns run93 lt-a 400 5 $S --blas cublaslt &
bench_turns run93 torch-a 400 5 $S --blas torch &
bench_turns run93 lt-b 400 5 $S --blas cublaslt &
bench_turns run93 torch-b 400 5 $S --blas torch &
wait
grep -v Warning /tmp/run93-smoke.out | tail -n 25 >> "$OUT/log.txt"
bench_tails run93
cd "$OUT" && tar czf run93-bundle.tgz run93-* && rm -f run93-*.jsonl
grep -v "^W1127" log.txt | grep "^\[\|Error\|error\|smoke\|CUDA graphs" | cut -c1-700
