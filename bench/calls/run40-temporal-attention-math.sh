#!/usr/bin/env bash
# One GPU call (2026-11-26): temporal attention over 16 frames as compiled tensor ops (`frame_attention`,
# now the compiled path) against SDPA's kernels (the variant ...-sdpa-temporal, as before), for the 2 x 16 step
# (selective) and 16-frame sampling; four processes compile side by side and time in turn.
#   run: bash bench/calls/run40-temporal-attention-math.sh   (carry .whl/core)
source bench/device_setup.sh core
echo "start $(date -u +%T)" >> "$OUT/log.txt"
T="--models sdvideo --cases 2x16 --steps 10 --warmup 3"
S="--models sdvideo --cases none --sample"
bench_turns run40 train-math 560 4 $T --variants compiled-selective-cl &
bench_turns run40 train-sdpa 560 4 $T --variants compiled-selective-cl-sdpa-temporal &
bench_turns run40 sample-math 560 4 $S --variants compiled-selective-cl &
bench_turns run40 sample-sdpa 560 4 $S --variants compiled-selective-cl-sdpa-temporal &
wait
bench_tails run40
cat "$OUT/log.txt"
