#!/usr/bin/env bash
# One GPU call (2026-11-27): the temporal transformer's tokens kept frame-major in inference on channels-last maps
# (temporal_attention.FRAME_MAJOR; fused frame attention reading (batch, frames, positions, 3C)). Guided 16-frame
# sampling (25 steps, CUDA graphs) with all fusions against all but this one, two processes of each; every region
# timed, the 64 x 64 up-block transformer's kernels profiled (bench_regions.py). All compile side by side, time in turn.
#   run: bash bench/calls/run98-frame-major-tokens.sh   (carry .whl/core .whl/av .whl/tf)
source bench/device_setup.sh core av tf
echo "start $(date -u +%T)" >> "$OUT/log.txt"
S="--cases none --sample --sample-graphs --models sdvideo --variants compiled-cl-pair"
OLD="--fusions linear-gelu,bias-after-matmul,channel-stats-group-norm"
T=/tmp/turns-run98-5
mkdir -p $T
(timeout 480 python3 bench/bench_regions.py --turns $T --processes 5 --json "$OUT/run98-regions.json" \
   --profile "up_blocks.3.attentions.0$" --profile-out "$OUT/run98-profile-regions.txt" > /tmp/run98-regions.out 2>&1; \
 rc=$?; echo "regions exit $rc $(date -u +%T)" >> "$OUT/log.txt"; if [ $rc = 124 ]; then touch $T/ready-killed-regions; fi) &
bench_turns run98 all-a 480 5 $S --fusions all &
bench_turns run98 old-a 480 5 $S $OLD &
bench_turns run98 all-b 480 5 $S --fusions all &
bench_turns run98 old-b 480 5 $S $OLD &
wait
grep '^{' /tmp/run98-regions.out | tail -n 1 | cut -c1-2500 >> "$OUT/log.txt"
grep -i "error" /tmp/run98-regions.out | tail -n 5 >> "$OUT/log.txt"
bench_tails run98
cd "$OUT" && tar czf run98-bundle.tgz run98-*.json* run98-profile-regions.txt && rm -f run98-*.jsonl run98-*.json run98-profile-regions.txt
grep -v "^W1127" log.txt | grep "^\[\|^{\|Error\|error\|exit" | cut -c1-2500
