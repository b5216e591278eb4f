#!/usr/bin/env bash
# One GPU call (2026-11-27): the transformer Linears' biases added after the matmul in compiled inference
# (models/bias_after_matmul.py; inductor fuses the add into the residual add). First the forms alone at SD 1.5's
# levels (bench_ff_forms.py: compiled addmm + residual against mm + bias + residual, the matmul alone); then
# guided 16-frame sampling (25 steps, CUDA graphs) with all fusions against all but this one, two processes of
# each, compiling side by side and timing in turn; while they compile, the whole CLI on a tiny model on the GPU.
#   run: bash bench/calls/run89-bias-after-matmul.sh   (carry .whl/core .whl/av .whl/tf)
source bench/device_setup.sh core av tf
echo "start $(date -u +%T)" >> "$OUT/log.txt"
timeout 150 python3 bench/bench_ff_forms.py --json "$OUT/run89-ff-forms.json" > /tmp/run89-ff.out 2>&1
echo "ff-forms exit $? $(date -u +%T)" >> "$OUT/log.txt"
grep -v Warning /tmp/run89-ff.out | grep -i "error\|channels" | cut -c1-1500 >> "$OUT/log.txt"
S="--cases none --sample --sample-graphs --models sdvideo --variants compiled-cl-pair"
mkdir -p /tmp/turns-run89-5
(timeout 300 python3 bench/gpu_smoke.py --out /tmp/gpu-smoke > /tmp/run89-smoke.out 2>&1; \
 echo "smoke exit $? $(date -u +%T)" >> "$OUT/log.txt"; touch /tmp/turns-run89-5/ready-smoke) &
bench_turns run89 all-a 400 5 $S --fusions all &
bench_turns run89 lg-a 400 5 $S --fusions linear-gelu &
bench_turns run89 all-b 400 5 $S --fusions all &
bench_turns run89 lg-b 400 5 $S --fusions linear-gelu &
wait
grep -v Warning /tmp/run89-smoke.out | tail -n 25 >> "$OUT/log.txt"
bench_tails run89
cd "$OUT" && tar czf run89-bundle.tgz run89-* && rm -f run89-*.jsonl
grep -v "^W1127" log.txt | grep "^\[\|Error\|error\|smoke\|CUDA graphs\|ff-forms\|channels" | cut -c1-1500
