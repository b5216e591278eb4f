#!/usr/bin/env bash
# One GPU call (2026-11-26): why run 78's skip-concat made sampling slower: every region timed alone, and the
# kernels of two up-block resnets, with no fusion and with skip-concat alone (bench_regions.py --fusions); two
# processes compile side by side and time in turn.
# Record of the call as run: skip-concat (its models/skip_concat.py and --fusions names) was measured and removed
# after run 81 (bench/PERFORMANCE_NOTES.md); bench_unet.py's --fusions now knows linear-gelu only.
#   run: bash bench/calls/run79-skip-concat-regions.sh   (carry .whl/core)
source bench/device_setup.sh core
echo "start $(date -u +%T)" >> "$OUT/log.txt"
T="--turns /tmp/turns-run79-2 --processes 2 --profile up_blocks.3.resnets.[01]$"
for f in none skip-concat; do
  (timeout 500 python3 bench/bench_regions.py $T --fusions $f --json "$OUT/run79-regions-$f.json" \
    --profile-out "$OUT/run79-profile-regions-$f.txt" > /tmp/run79-$f.out 2>&1) &
done
wait
for f in /tmp/run79-*.out; do echo "== $f"; grep -v Warning "$f" | grep -v "^W1126" | tail -n 3 | cut -c1-1500; done >> "$OUT/log.txt"
cd "$OUT" && tar czf run79-bundle.tgz run79-* && cat log.txt
