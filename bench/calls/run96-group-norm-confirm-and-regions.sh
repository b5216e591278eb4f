#!/usr/bin/env bash
# One GPU call (2026-11-27): GroupNorm from channel statistics again -- guided 16-frame sampling (25 steps, CUDA
# graphs) with all fusions against all but it, two processes of each; the GroupNorm forms alone
# (bench_group_norm.py, channels-last outputs, every shape compiled); and every region timed with its kernels
# profiled for the 64 x 64 up-block transformer and resnet (bench_regions.py). All compile side by side and time in turn.
#   run: bash bench/calls/run96-group-norm-confirm-and-regions.sh   (carry .whl/core .whl/av .whl/tf)
source bench/device_setup.sh core av tf
echo "start $(date -u +%T)" >> "$OUT/log.txt"
S="--cases none --sample --sample-graphs --models sdvideo --variants compiled-cl-pair"
OLD="--fusions linear-gelu,bias-after-matmul"
T=/tmp/turns-run96-6
mkdir -p $T
(timeout 420 python3 bench/bench_group_norm.py --turns $T --processes 6 \
   --json "$OUT/run96-gn-forms.json" > /tmp/run96-gn.out 2>&1; rc=$?; echo "gn-forms exit $rc $(date -u +%T)" >> "$OUT/log.txt"; \
 if [ $rc = 124 ]; then touch $T/ready-killed-gn; fi) &
(timeout 480 python3 bench/bench_regions.py --turns $T --processes 6 --json "$OUT/run96-regions.json" \
   --profile "up_blocks.3.(attentions|resnets).0$" --profile-out "$OUT/run96-profile-regions.txt" > /tmp/run96-regions.out 2>&1; \
 rc=$?; echo "regions exit $rc $(date -u +%T)" >> "$OUT/log.txt"; if [ $rc = 124 ]; then touch $T/ready-killed-regions; fi) &
bench_turns run96 all-a 480 6 $S --fusions all &
bench_turns run96 old-a 480 6 $S $OLD &
bench_turns run96 all-b 480 6 $S --fusions all &
bench_turns run96 old-b 480 6 $S $OLD &
wait
grep '^{' /tmp/run96-gn.out | cut -c1-2500 >> "$OUT/log.txt"
grep '^{' /tmp/run96-regions.out | tail -n 1 | cut -c1-2500 >> "$OUT/log.txt"
bench_tails run96
cd "$OUT" && tar czf run96-bundle.tgz run96-*.json* run96-profile-regions.txt && rm -f run96-*.jsonl run96-*.json run96-profile-regions.txt
grep -v "^W1127" log.txt | grep "^\[\|^{\|Error\|error\|exit" | cut -c1-2500
