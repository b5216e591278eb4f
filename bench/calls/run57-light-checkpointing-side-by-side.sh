#!/usr/bin/env bash
# One GPU call (2026-11-26): the 2 x 16 step (block regions) with light-1, light-2 and selective-2
# checkpointing side by side (run 56's selective-2 process ran out of memory beside four others).
#   run: bash bench/calls/run57-light-checkpointing-side-by-side.sh   (carry .whl/core)
source bench/device_setup.sh core
echo "start $(date -u +%T)" >> "$OUT/log.txt"
N=3
T="--cases 2x16 --models sdvideo"
bench_turns run57 train-light-1 570 $N $T --variants compiled-light-1-cl-blocks &
bench_turns run57 train-light-2 570 $N $T --variants compiled-light-2-cl-blocks &
bench_turns run57 train-selective-2 570 $N $T --variants compiled-selective-2-cl-blocks &
wait
bench_tails run57
cat "$OUT/log.txt"
