#!/usr/bin/env bash
# One GPU call (2026-11-26): the whole CLI on a tiny model on the GPU (bench/gpu_smoke.py: prepare, train, resume,
# sample with and without CUDA graphs) with the fused linear + GELU path (run 82's smoke failed in `train`: the
# path queried autocast for the memory estimate's "meta" tensors; fixed).
#   run: bash bench/calls/run83-gpu-smoke.sh   (carry .whl/core .whl/av .whl/tf)
source bench/device_setup.sh core av tf
echo "start $(date -u +%T)" >> "$OUT/log.txt"
timeout 540 python3 bench/gpu_smoke.py --out /tmp/gpu-smoke 2>&1 | grep -v Warning | tail -n 40 >> "$OUT/log.txt"
echo "smoke done $(date -u +%T)" >> "$OUT/log.txt"
grep -v "Loading weights\|should be kept\|^ *$" "$OUT/log.txt" | cut -c1-400
