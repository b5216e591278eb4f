#!/usr/bin/env bash
# One GPU call (2026-11-26): sdvideo's fused 8-bit AdamW (training/adamw8bit.py). While three 2 x 16 steps
# (block regions, 8-bit AdamW: light-1+2, light-1+3, light-2) compile, the optimizer step alone: the kernel
# against its tensor-op reference, then fused AdamW, sdvideo's, bitsandbytes' and torchao's 8-bit AdamW.
#   run: bash bench/calls/run60-fused-adamw8bit.sh   (carry .whl/core .whl/bnb)
source bench/device_setup.sh core bnb
echo "start $(date -u +%T)" >> "$OUT/log.txt"
N=3
T="--cases 2x16 --models sdvideo --optimizer adamw8bit"
bench_turns run60 train-light-1p2 560 $N $T --variants compiled-light-1+2-cl-blocks &
bench_turns run60 train-light-1p3 560 $N $T --variants compiled-light-1+3-cl-blocks &
bench_turns run60 train-light-2 560 $N $T --variants compiled-light-2-cl-blocks &
timeout 240 python3 bench/bench_optimizer.py --json "$OUT/run60-optimizer.json" > /tmp/run60-optimizer.out 2>&1
echo "[optimizer $(date -u +%T)]" >> "$OUT/log.txt"; grep -E '^\{|Error' /tmp/run60-optimizer.out | tail -n 8 >> "$OUT/log.txt"
wait
bench_tails run60
cat "$OUT/log.txt"
