#!/usr/bin/env bash
# One GPU call (2026-11-26): the 2 x 16 step (block regions) with the product's 8-bit AdamW and the light
# levels whose last transformer stores its activations: light-1, light-1+2, light-1+3 side by side; and the
# optimizer step alone (fused AdamW against torchao's 8-bit AdamW) while they compile.
#   run: bash bench/calls/run58-light-skip-last-and-8bit-adamw.sh   (carry .whl/core)
source bench/device_setup.sh core
echo "start $(date -u +%T)" >> "$OUT/log.txt"
N=3
T="--cases 2x16 --models sdvideo --optimizer adamw8bit"
bench_turns run58 train-light-1 570 $N $T --variants compiled-light-1-cl-blocks &
bench_turns run58 train-light-1+2 570 $N $T --variants compiled-light-1+2-cl-blocks &
bench_turns run58 train-light-1+3 570 $N $T --variants compiled-light-1+3-cl-blocks &
timeout 300 python3 bench/bench_optimizer.py --json "$OUT/run58-optimizer.json" > /tmp/run58-optimizer.out 2>&1
echo "[optimizer $(date -u +%T)]" >> "$OUT/log.txt"; grep -v Warning /tmp/run58-optimizer.out | tail -n 8 >> "$OUT/log.txt"
wait
bench_tails run58
cat "$OUT/log.txt"
