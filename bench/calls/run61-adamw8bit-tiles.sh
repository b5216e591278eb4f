#!/usr/bin/env bash
# One GPU call (2026-11-26): sdvideo's 8-bit AdamW with (8, 256) tiles per program (run 60: one block of 256).
# First alone on the GPU: the optimizer step (kernel against reference; fused AdamW, sdvideo's, bitsandbytes'
# and torchao's 8-bit AdamW). Then three 2 x 16 steps (block regions) side by side: light-1+2 with the 8-bit
# AdamW and with fused AdamW (the optimizer's cost inside a step), light-1+3 with the 8-bit AdamW.
#   run: bash bench/calls/run61-adamw8bit-tiles.sh   (carry .whl/core .whl/bnb)
source bench/device_setup.sh core bnb
echo "start $(date -u +%T)" >> "$OUT/log.txt"
timeout 200 python3 bench/bench_optimizer.py --json "$OUT/run61-optimizer.json" > /tmp/run61-optimizer.out 2>&1
echo "[optimizer $(date -u +%T)]" >> "$OUT/log.txt"; grep -E '^\{|Error' /tmp/run61-optimizer.out | tail -n 8 >> "$OUT/log.txt"
N=3
T="--cases 2x16 --models sdvideo"
bench_turns run61 train-light-1p2-8bit 400 $N $T --optimizer adamw8bit --variants compiled-light-1+2-cl-blocks &
bench_turns run61 train-light-1p2-adamw 400 $N $T --optimizer adamw --variants compiled-light-1+2-cl-blocks &
bench_turns run61 train-light-1p3-8bit 400 $N $T --optimizer adamw8bit --variants compiled-light-1+3-cl-blocks &
wait
bench_tails run61
cat "$OUT/log.txt"
