#!/usr/bin/env bash
# One GPU call (2026-11-26), run 33 again with smaller steps (run 33: four processes, none reached the timing
# barrier within 570 s, nothing logged; float8 left for its own call). Three processes compile side by side,
# then time in turn: 16-frame sampling through plain calls and CUDA graphs (GraphedUNet), its step profiled;
# the same with fused attention input projections (models/fused_attention.py); the 2 x 16 step with and
# without fused projections, one after the other. Each process's last lines go to the log.
# Its fused variant was removed from bench_unet.py afterwards (commit 7d4e3e5 has it).
#   run: bash bench/calls/run34-graphs-fused.sh   (carry .whl/core)
source bench/device_setup.sh core
echo "start $(date -u +%T)" >> "$OUT/log.txt"
S="--models sdvideo --cases none --sample --sample-graphs"
bench_turns run34 sample 560 3 $S --variants compiled-selective-cl --profile-sampling "$OUT/profile-sampling.txt" &
bench_turns run34 sample-fused 560 3 $S --variants compiled-selective-cl-fused &
bench_turns run34 train 560 3 --models sdvideo --variants compiled-selective-cl,compiled-selective-cl-fused \
  --cases 2x16 --steps 8 --warmup 3 &
wait
bench_tails run34
cat "$OUT/log.txt"
