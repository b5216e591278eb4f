#!/usr/bin/env bash
# One GPU call (2026-11-26): batch 2 x 16 as two micro-batches of 1 x 16 (gradients accumulated, one
# optimizer step: the same update) without checkpointing, against the whole batch at once, block and
# layer regions; and coordinate-descent tuning of inductor's kernels (run 43: -2 % on sampling) on it.
#   run: bash bench/calls/run44-micro-batches.sh   (carry .whl/core)
source bench/device_setup.sh core
echo "start $(date -u +%T)" >> "$OUT/log.txt"
T="--models sdvideo --steps 10 --warmup 3"
bench_turns run44 blocks 560 4 $T --cases 2x16 --variants compiled-cl-blocks &
bench_turns run44 blocks-micro 560 4 $T --cases 2x16/1 --variants compiled-cl-blocks &
bench_turns run44 layers-micro 560 4 $T --cases 2x16/1 --variants compiled-cl &
bench_turns run44 blocks-cdt-micro 540 4 $T --cases 2x16/1 --variants compiled-cl-blocks-cdt &
wait
bench_tails run44
cat "$OUT/log.txt"
