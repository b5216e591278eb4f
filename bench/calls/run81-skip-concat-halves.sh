#!/usr/bin/env bash
# One GPU call (2026-11-26): run 80's skip-concat with each half normalised and activated on its own before the
# concatenation (run 80: one kernel reading both inputs under masks took 406 us where the plain norm + SiLU took
# 270). Guided 16-frame sampling (25 steps, CUDA graphs) with no fusion, skip-concat alone and both fusions; and
# the up-block resnets' regions and kernels with skip-concat. Four processes compile side by side, time in turn.
# Record of the call as run: skip-concat (its models/skip_concat.py and --fusions names) was measured and removed
# after run 81 (bench/PERFORMANCE_NOTES.md); bench_unet.py's --fusions now knows linear-gelu only.
#   run: bash bench/calls/run81-skip-concat-stats.sh   (carry .whl/core)
source bench/device_setup.sh core
echo "start $(date -u +%T)" >> "$OUT/log.txt"
S="--cases none --sample --sample-graphs --models sdvideo --variants compiled-cl-pair"
bench_turns run81 none 570 4 $S --fusions none &
bench_turns run81 skip-concat 570 4 $S --fusions skip-concat &
bench_turns run81 all 570 4 $S --fusions all &
(timeout 560 python3 bench/bench_regions.py --turns /tmp/turns-run81-4 --processes 4 --fusions skip-concat \
  --profile "up_blocks.3.resnets.[01]$" --json "$OUT/run81-regions-skip-concat.json" \
  --profile-out "$OUT/run81-profile-regions-skip-concat.txt" > /tmp/run81-regions.out 2>&1) &
wait
bench_tails run81
cd "$OUT" && tar czf run81-bundle.tgz run81-* && rm -f run81-*.jsonl
grep -v "^W1126" log.txt | grep "^\[\|Error\|unet_ms" | cut -c1-2500
