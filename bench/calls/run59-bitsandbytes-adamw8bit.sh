#!/usr/bin/env bash
# One GPU call (2026-11-26): the 2 x 16 step (block regions) with bitsandbytes' 8-bit AdamW at light-1+2 and light-1+3, beside
# light-1 with fused AdamW (the last transformer now stores its activations; run 57 recomputed it);
# while they compile, the optimizer step alone (fused AdamW, bitsandbytes' and torchao's 8-bit AdamW).
#   run: bash bench/calls/run59-bitsandbytes-adamw8bit.sh   (carry .whl/core .whl/bnb)
source bench/device_setup.sh core bnb
echo "start $(date -u +%T)" >> "$OUT/log.txt"
N=3
T="--cases 2x16 --models sdvideo"
bench_turns run59 train-light-1p2-bnb 540 $N $T --optimizer adamw8bit --variants compiled-light-1+2-cl-blocks &
bench_turns run59 train-light-1p3-bnb 540 $N $T --optimizer adamw8bit --variants compiled-light-1+3-cl-blocks &
bench_turns run59 train-light-1-adamw 540 $N $T --optimizer adamw --variants compiled-light-1-cl-blocks &
# while they compile (as in run 58): the optimizer step alone
timeout 240 python3 bench/bench_optimizer.py --json "$OUT/run59-optimizer.json" > /tmp/run59-optimizer.out 2>&1
echo "[optimizer $(date -u +%T)]" >> "$OUT/log.txt"; grep -E '^\{|Error' /tmp/run59-optimizer.out | tail -n 8 >> "$OUT/log.txt"
wait
bench_tails run59
cat "$OUT/log.txt"
