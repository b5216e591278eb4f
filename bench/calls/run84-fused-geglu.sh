#!/usr/bin/env bash
# One GPU call (2026-11-27): GEGLU's projection and gate as one Triton matmul over interleaved weight rows
# (models/fused_geglu.py) alone at SD 1.5's four transformer levels (bench_ff_forms.py: against the compiled
# cuBLAS projection + gate kernel, with Triton's autotuning printed); then guided 16-frame sampling (25 steps,
# CUDA graphs) with all fusions against all but the GEGLU one, two processes of each, compiling side by side
# and timing in turn; while they compile, the whole CLI on a tiny model on the GPU (bench/gpu_smoke.py).
# Record of the call as run: models/fused_geglu.py then had one program per tile, tiles autotuned by Triton
# (it chose 128 x 256 x 64, 8 warps, 3 stages at every level), libdevice's erf, the kernel at every level; the
# persistent form replaced it (run 85) and the whole module was removed after run 86 (bench/PERFORMANCE_NOTES.md,
# commit "one-matmul GEGLU measured (runs 84-86)" holds the run-86 form).
#   run: bash bench/calls/run84-fused-geglu.sh   (carry .whl/core .whl/av .whl/tf)
source bench/device_setup.sh core av tf
echo "start $(date -u +%T)" >> "$OUT/log.txt"
TRITON_PRINT_AUTOTUNING=1 timeout 200 python3 bench/bench_ff_forms.py --json "$OUT/run84-ff-forms.json" > /tmp/run84-ff.out 2>&1
echo "ff-forms exit $? $(date -u +%T)" >> "$OUT/log.txt"
grep -v Warning /tmp/run84-ff.out | grep -i "autotun\|best\|error\|geglu\|channels" | cut -c1-600 >> "$OUT/log.txt"
S="--cases none --sample --sample-graphs --models sdvideo --variants compiled-cl-pair"
mkdir -p /tmp/turns-run84-5
(timeout 300 python3 bench/gpu_smoke.py --out /tmp/gpu-smoke > /tmp/run84-smoke.out 2>&1; \
 echo "smoke exit $? $(date -u +%T)" >> "$OUT/log.txt"; touch /tmp/turns-run84-5/ready-smoke) &
bench_turns run84 all-a 360 5 $S --fusions all &
bench_turns run84 lg-a 360 5 $S --fusions linear-gelu &
bench_turns run84 all-b 360 5 $S --fusions all &
bench_turns run84 lg-b 360 5 $S --fusions linear-gelu &
wait
grep -v Warning /tmp/run84-smoke.out | tail -n 25 >> "$OUT/log.txt"
bench_tails run84
cd "$OUT" && tar czf run84-bundle.tgz run84-* && rm -f run84-*.jsonl
grep -v "^W1127" log.txt | grep "^\[\|Error\|error\|smoke\|CUDA graphs\|ff-forms\|geglu\|best" | cut -c1-900
