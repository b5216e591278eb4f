#!/usr/bin/env bash
# One GPU call (2026-11-27): guided 16-frame sampling (25 steps, CUDA graphs) with inductor's bias-add unfusing
# allowed for bf16 (keep_addmm_fused_for_half_dtypes=False: a Linear whose output only feeds pointwise ops runs as
# cuBLAS's mm with the bias added in the following fused kernel; run 76's regions had the 320 -> 320 Linears with
# bias at 0.10 ms each at 64 x 64 against 0.06 ms for the same matmuls without), alone and with coordinate
# descent, against the defaults twice; four processes compiling side by side and timing in turn.
# Record of the call as run: torch 2.11's inductor has no keep_addmm_fused_for_half_dtypes (the log's first line:
# False None); both processes that set it stopped with an AttributeError, the two default ones timed.
#   run: bash bench/calls/run88-unfused-bias.sh   (carry .whl/core)
source bench/device_setup.sh core
echo "start $(date -u +%T)" >> "$OUT/log.txt"
python3 -c "import torch._inductor.config as c; print('keep_addmm_fused_for_half_dtypes' in dir(c), getattr(c, 'keep_addmm_fused_for_half_dtypes', None))" >> "$OUT/log.txt" 2>&1
S="--cases none --sample --sample-graphs --models sdvideo"
U="keep_addmm_fused_for_half_dtypes=False"
mkdir -p /tmp/turns-run88-4
bench_turns run88 base-a 570 4 $S --variants compiled-cl-pair &
bench_turns run88 unfused 570 4 $S --variants compiled-cl-pair --inductor $U &
bench_turns run88 base-b 570 4 $S --variants compiled-cl-pair &
bench_turns run88 unfused-cdt 570 4 $S --variants compiled-cl-pair-cdt --inductor $U &
wait
bench_tails run88
cd "$OUT" && tar czf run88-bundle.tgz run88-* && rm -f run88-*.jsonl
grep -v "^W1127" log.txt | grep "^\[\|Error\|error\|True\|False" | cut -c1-700
