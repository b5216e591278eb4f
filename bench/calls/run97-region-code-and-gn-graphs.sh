#!/usr/bin/env bash
# One GPU call (2026-11-27): inductor's generated code for every compiled region of the shipped code
# (bench_regions.py --output-code, to run97-regions-code.txt.gz: which kernels the 64 x 64 transformers' looped
# LayerNorm reductions are), and the GroupNorm forms alone timed from CUDA graphs as well (bench_group_norm.py:
# the kernels without launch time, as `sample` runs them). Two processes compiling side by side, timing in turn.
#   run: bash bench/calls/run97-region-code-and-gn-graphs.sh   (carry .whl/core .whl/tf)
source bench/device_setup.sh core tf
echo "start $(date -u +%T)" >> "$OUT/log.txt"
T=/tmp/turns-run97-2
mkdir -p $T
(timeout 300 python3 bench/bench_group_norm.py --turns $T --processes 2 \
   --json "$OUT/run97-gn-forms.json" > /tmp/run97-gn.out 2>&1; rc=$?; echo "gn-forms exit $rc $(date -u +%T)" >> "$OUT/log.txt"; \
 if [ $rc = 124 ]; then touch $T/ready-killed-gn; fi) &
(timeout 420 python3 bench/bench_regions.py --turns $T --processes 2 --json "$OUT/run97-regions.json" --output-code \
   > /tmp/run97-regions.out 2>&1; rc=$?; echo "regions exit $rc $(date -u +%T)" >> "$OUT/log.txt"; \
 if [ $rc = 124 ]; then touch $T/ready-killed-regions; fi) &
wait
grep '^{' /tmp/run97-gn.out | cut -c1-3000 >> "$OUT/log.txt"
grep '^{' /tmp/run97-regions.out | tail -n 1 | cut -c1-2500 >> "$OUT/log.txt"
gzip -c /tmp/run97-regions.out > "$OUT/run97-regions-code.txt.gz"
cd "$OUT" && tar czf run97-bundle.tgz run97-*.json && rm -f run97-*.json
grep -v "^W1127" log.txt | grep "^{\|Error\|error\|exit" | cut -c1-3000
