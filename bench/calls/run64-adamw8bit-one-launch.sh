#!/usr/bin/env bash
# One GPU call (2026-11-26): sdvideo's 8-bit AdamW as one kernel launch for all tensors (run 61: one per tensor).
# First alone on the GPU: the optimizer step (kernel against reference; fused AdamW and sdvideo's 8-bit AdamW).
# Then three 2 x 16 steps (block regions) side by side: light-1+2 with the 8-bit AdamW and with fused AdamW,
# light-1+3 with the 8-bit AdamW; while they compile, the CLI on a tiny model with the 8-bit AdamW through a
# resume (bench/gpu_smoke.py).
#   run: bash bench/calls/run64-adamw8bit-one-launch.sh   (carry .whl/core .whl/av .whl/tf)
source bench/device_setup.sh core av tf
echo "start $(date -u +%T)" >> "$OUT/log.txt"
timeout 120 python3 bench/bench_optimizer.py --optimizers adamw,adamw8bit --json "$OUT/run64-optimizer.json" > /tmp/run64-optimizer.out 2>&1
echo "[optimizer $(date -u +%T)]" >> "$OUT/log.txt"; grep -E '^\{|Error' /tmp/run64-optimizer.out | tail -n 8 >> "$OUT/log.txt"
N=3
T="--cases 2x16 --models sdvideo"
bench_turns run64 train-light-1p2-8bit 450 $N $T --optimizer adamw8bit --variants compiled-light-1+2-cl-blocks &
bench_turns run64 train-light-1p2-adamw 450 $N $T --optimizer adamw --variants compiled-light-1+2-cl-blocks &
bench_turns run64 train-light-1p3-8bit 450 $N $T --optimizer adamw8bit --variants compiled-light-1+3-cl-blocks &
timeout 240 python3 bench/gpu_smoke.py --out /tmp/gpu-smoke 2>&1 | grep -v Warning | grep -E '^\$|optimizer|trained|resumed|files|Error|error' >> "$OUT/log.txt"
echo "smoke done $(date -u +%T)" >> "$OUT/log.txt"
wait
bench_tails run64
cat "$OUT/log.txt"
