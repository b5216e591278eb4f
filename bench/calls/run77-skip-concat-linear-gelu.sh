#!/usr/bin/env bash
# One GPU call (2026-11-26): guided 16-frame sampling (25 steps, CUDA graphs) with sdvideo's two new inference
# fusions -- up-block resnets reading their skip in place (skip_concat.py) and the temporal feed-forward's first
# matmul with cuBLASLt's GELU epilogue (fused_linear_gelu.py) -- both, neither, and each alone; four processes
# compile side by side and time in turn.
# Record of the call as run: skip-concat (its models/skip_concat.py and --fusions names) was measured and removed
# after run 81 (bench/PERFORMANCE_NOTES.md); bench_unet.py's --fusions now knows linear-gelu only.
#   run: bash bench/calls/run77-skip-concat-linear-gelu.sh   (carry .whl/core)
source bench/device_setup.sh core
echo "start $(date -u +%T)" >> "$OUT/log.txt"
python3 -c "import torch._inductor.config as c; print('force_pointwise_cat' , hasattr(c, 'force_pointwise_cat'))" >> "$OUT/log.txt"
S="--cases none --sample --sample-graphs --models sdvideo --variants compiled-cl-pair"
bench_turns run77 all 570 4 $S --fusions all &
bench_turns run77 none 570 4 $S --fusions none &
bench_turns run77 linear-gelu 570 4 $S --fusions linear-gelu &
bench_turns run77 skip-concat 570 4 $S --fusions skip-concat &
wait
bench_tails run77
grep -v "^W1126" "$OUT/log.txt" | grep "^\[\|Error\|force" | cut -c1-1500
