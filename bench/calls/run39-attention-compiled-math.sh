#!/usr/bin/env bash
# One GPU call (2026-11-26): cross-attention (77 keys) and temporal attention (16 frames) at the 64 x 64 map,
# and self-attention at 16 x 16: each SDPA kernel against the attention written as plain tensor ops under
# torch.compile (two batched GEMMs around a fused fp32 softmax), forward + backward and forward only.
#   run: bash bench/calls/run39-attention-compiled-math.sh   (carry .whl/core)
source bench/device_setup.sh core
python3 bench/bench_attention.py --shapes "cross 64x64,temporal 64x64,self 16x16,self 32x32" --compiled-math \
  --json "$OUT/run39-attention.json" 2>&1 | grep -v Warning | tail -n 30
