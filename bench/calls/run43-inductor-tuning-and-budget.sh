#!/usr/bin/env bash
# One GPU call (2026-11-26): inductor's own tuning for sampling (coordinate-descent block sizes;
# max-autotune's Triton templates against cuBLAS/cuDNN), beside the default compiled sampling with CUDA
# graphs and temporal attention as tensor ops measured together for the first time; and AOTAutograd's
# activation memory budget on block regions without checkpointing (the partitioner recomputes the
# cheapest values until activations are about half), aiming at 2 x 16 under 22 GiB near none's speed.
#   run: bash bench/calls/run43-inductor-tuning-and-budget.sh   (carry .whl/core)
source bench/device_setup.sh core
echo "start $(date -u +%T)" >> "$OUT/log.txt"
S="--models sdvideo --cases none --sample --sample-graphs"
bench_turns run43 sample-default 560 4 $S --variants compiled-cl &
bench_turns run43 sample-cdt 560 4 $S --variants compiled-cl-cdt &
bench_turns run43 sample-autotune 450 4 $S --variants compiled-cl-autotune &
bench_turns run43 budget-blocks 560 4 --models sdvideo --cases 2x16 --steps 10 --warmup 3 --variants compiled-cl-blocks-budget-0.5 &
wait
bench_tails run43
cat "$OUT/log.txt"
