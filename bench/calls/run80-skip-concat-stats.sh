#!/usr/bin/env bash
# One GPU call (2026-11-26): skip-concat with the GroupNorm computed from each tensor's per-channel statistics
# (run 79: inductor's reduction over a pointwise concatenation took 2.9 ms where the norm took 0.15). Guided
# 16-frame sampling (25 steps, CUDA graphs) with no fusion, skip-concat alone, and both fusions; and the up-block
# resnets' regions and kernels with skip-concat. Four processes compile side by side and time in turn.
# Record of the call as run: skip-concat (its models/skip_concat.py and --fusions names) was measured and removed
# after run 81 (bench/PERFORMANCE_NOTES.md); bench_unet.py's --fusions now knows linear-gelu only.
#   run: bash bench/calls/run80-skip-concat-stats.sh   (carry .whl/core)
source bench/device_setup.sh core
echo "start $(date -u +%T)" >> "$OUT/log.txt"
S="--cases none --sample --sample-graphs --models sdvideo --variants compiled-cl-pair"
bench_turns run80 none 570 4 $S --fusions none &
bench_turns run80 skip-concat 570 4 $S --fusions skip-concat &
bench_turns run80 all 570 4 $S --fusions all &
(timeout 560 python3 bench/bench_regions.py --turns /tmp/turns-run80-4 --processes 4 --fusions skip-concat \
  --profile "up_blocks.3.resnets.[01]$" --json "$OUT/run80-regions-skip-concat.json" \
  --profile-out "$OUT/run80-profile-regions-skip-concat.txt" > /tmp/run80-regions.out 2>&1) &
wait
bench_tails run80
cd "$OUT" && tar czf run80-bundle.tgz run80-* && rm -f run80-*.jsonl
grep -v "^W1126" log.txt | grep "^\[\|Error\|unet_ms" | cut -c1-2500
