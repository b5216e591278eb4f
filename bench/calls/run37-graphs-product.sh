#!/usr/bin/env bash
# One GPU call (2026-11-26): the CLI on a tiny model with CUDA graphs now on by default in `sdvideo sample`
# (bench/gpu_smoke.py, which also compares the pipeline's fp16 latents with and without graphs), then
# 16-frame sampling of the SD-size model, compiled, at 512 and 256 px through plain calls and GraphedUNet
# (recording on the first video's second step, no separate warm-up).
#   run: bash bench/calls/run37-graphs-product.sh   (carry .whl/core .whl/av .whl/tf)
source bench/device_setup.sh core av tf
echo "start $(date -u +%T)" >> "$OUT/log.txt"
timeout 200 python3 bench/gpu_smoke.py --out /tmp/gpu-smoke 2>&1 | grep -v Warning | tail -n 40 >> "$OUT/log.txt"
bench_turns run37 sample 370 1 --models sdvideo --cases none --sample --sample-graphs --sample-latents 64,32 \
  --variants compiled-selective-cl
bench_tails run37
cat "$OUT/log.txt"
