#!/usr/bin/env bash
# One GPU call (2026-11-27): GroupNorm from per-channel statistics in compiled inference
# (models/channel_stats_group_norm.py). The forms alone at SD 1.5's GroupNorm shapes (bench_group_norm.py: native,
# channel-stats, sum-sumsq; GroupNorm + SiLU and add + GroupNorm; inductor's code to run94-gn-code.txt.gz), and
# guided 16-frame sampling (25 steps, CUDA graphs) with all fusions against all but this one, two processes of
# each; all compile side by side and time in turn; meanwhile the whole CLI on a tiny model on the GPU.
#   run: bash bench/calls/run94-channel-stats-group-norm.sh   (carry .whl/core .whl/av .whl/tf)
source bench/device_setup.sh core av tf
echo "start $(date -u +%T)" >> "$OUT/log.txt"
S="--cases none --sample --sample-graphs --models sdvideo --variants compiled-cl-pair"
OLD="--fusions linear-gelu,bias-after-matmul"
mkdir -p /tmp/turns-run94-6
(timeout 300 python3 bench/gpu_smoke.py --out /tmp/gpu-smoke > /tmp/run94-smoke.out 2>&1; \
 echo "smoke exit $? $(date -u +%T)" >> "$OUT/log.txt"; touch /tmp/turns-run94-6/ready-smoke) &
(timeout 400 python3 bench/bench_group_norm.py --turns /tmp/turns-run94-6 --processes 6 --output-code \
   --json "$OUT/run94-gn-forms.json" > /tmp/run94-gn.out 2>&1; rc=$?; echo "gn-forms exit $rc $(date -u +%T)" >> "$OUT/log.txt"; \
 if [ $rc = 124 ]; then touch /tmp/turns-run94-6/ready-killed-gn; fi) &
bench_turns run94 all-a 420 6 $S --fusions all &
bench_turns run94 old-a 420 6 $S $OLD &
bench_turns run94 all-b 420 6 $S --fusions all &
bench_turns run94 old-b 420 6 $S $OLD &
wait
grep -v Warning /tmp/run94-smoke.out | tail -n 25 >> "$OUT/log.txt"
grep '^{' /tmp/run94-gn.out | cut -c1-2500 >> "$OUT/log.txt"
gzip -c /tmp/run94-gn.out > "$OUT/run94-gn-code.txt.gz"
bench_tails run94
cd "$OUT" && tar czf run94-bundle.tgz run94-*.json* && rm -f run94-*.jsonl run94-*.json
grep -v "^W1127" log.txt | grep "^\[\|^{\|Error\|error\|smoke\|CUDA graphs\|gn-forms" | cut -c1-2500
