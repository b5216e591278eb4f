#!/usr/bin/env bash
# One GPU call (2026-11-26): the 2 x 16 step without checkpointing (what `auto` picks on an 80 GB card),
# block regions then layer regions, one process timing one after the other: FLOP utilisation against
# issue #6's 45 %.
#   run: bash bench/calls/run38-no-checkpointing-blocks.sh   (carry .whl/core)
source bench/device_setup.sh core
echo "start $(date -u +%T)" >> "$OUT/log.txt"
bench_turns run38 train 580 1 --models sdvideo --variants compiled-cl,compiled-cl-blocks --cases 2x16 --steps 10 --warmup 3
bench_tails run38
cat "$OUT/log.txt"
