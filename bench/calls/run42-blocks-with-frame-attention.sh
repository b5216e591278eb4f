#!/usr/bin/env bash
# One GPU call (2026-11-26): block regions with temporal attention as compiled tensor ops (run 40), at the
# two settings that matter for issue #6: selective-2 (the fastest under 22 GiB, run 31) and no
# checkpointing (what `auto` picks on an 80 GB card, run 38); two processes compile side by side, time in turn.
#   run: bash bench/calls/run42-blocks-with-frame-attention.sh   (carry .whl/core)
source bench/device_setup.sh core
echo "start $(date -u +%T)" >> "$OUT/log.txt"
T="--models sdvideo --cases 2x16 --steps 10 --warmup 3"
bench_turns run42 selective-2-blocks 380 2 $T --variants compiled-selective-2-cl-blocks &
bench_turns run42 none-blocks 380 2 $T --variants compiled-cl-blocks &
wait
bench_tails run42
cat "$OUT/log.txt"
