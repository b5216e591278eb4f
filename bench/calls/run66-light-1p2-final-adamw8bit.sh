#!/usr/bin/env bash
# One GPU call (2026-11-26): the 2 x 16 step (block regions) with the final 8-bit AdamW (one aligned launch, run 65)
# beside fused AdamW: light-1+2 with each, light-1+3 with the 8-bit AdamW.
#   run: bash bench/calls/run66-light-1p2-final-adamw8bit.sh   (carry .whl/core)
source bench/device_setup.sh core
echo "start $(date -u +%T)" >> "$OUT/log.txt"
N=3
T="--cases 2x16 --models sdvideo"
bench_turns run66 train-light-1p2-8bit 560 $N $T --optimizer adamw8bit --variants compiled-light-1+2-cl-blocks &
bench_turns run66 train-light-1p2-adamw 560 $N $T --optimizer adamw --variants compiled-light-1+2-cl-blocks &
bench_turns run66 train-light-1p3-8bit 560 $N $T --optimizer adamw8bit --variants compiled-light-1+3-cl-blocks &
wait
bench_tails run66
cat "$OUT/log.txt"
