#!/usr/bin/env bash
# One GPU call (2026-11-26): guided sampling with the CFG halves' shared layers before the text run once
# (`models/guidance_pair.py`, `VideoUNet(..., guidance_pair=True)`, on in `denoise_video` when guided)
# against plain calls, each with CUDA graphs; with coordinate-descent tuning on top (run 43: -2 %); one
# denoising step's kernel profile with the pair. Beside the compiles, the CLI smoke on a tiny model
# (bench/gpu_smoke.py: prepare -> train -> resume -> sample, whose sampling now shares the halves).
#   run: bash bench/calls/run45-guidance-pair.sh   (carry .whl/core .whl/av .whl/tf)
source bench/device_setup.sh core av tf
echo "start $(date -u +%T)" >> "$OUT/log.txt"
S="--models sdvideo --cases none --sample --sample-graphs"
bench_turns run45 default 560 3 $S --variants compiled-cl &
bench_turns run45 pair 560 3 $S --variants compiled-cl-pair --profile-sampling "$OUT/run45-profile-sampling-pair.txt" &
bench_turns run45 pair-cdt 560 3 $S --variants compiled-cl-pair-cdt &
timeout 200 python3 bench/gpu_smoke.py --out /tmp/gpu-smoke 2>&1 | grep -v Warning | tail -n 40 >> "$OUT/log.txt"
echo "smoke done $(date -u +%T)" >> "$OUT/log.txt"
wait
bench_tails run45
cat "$OUT/log.txt"
