#!/usr/bin/env bash
# One GPU call (2026-11-26): the whole CLI on a tiny model with the fused Triton temporal attention and
# cuDNN benchmarking (bench/gpu_smoke.py: prepare -> train (bf16 autocast, eager, the kernel's backward)
# -> resume -> sample (fp16, CUDA graphs)); then the kernel against fp32 tensor ops in fp32, fp16 and bf16 at
# several frame counts and head sizes on the GPU (the tests run the kernels through the CPU interpreter).
#   run: bash bench/calls/run55-gpu-smoke.sh   (carry .whl/core .whl/av .whl/tf)
source bench/device_setup.sh core av tf
echo "start $(date -u +%T)" >> "$OUT/log.txt"
timeout 300 python3 bench/gpu_smoke.py --out /tmp/gpu-smoke 2>&1 | grep -v Warning | tail -n 60 >> "$OUT/log.txt"
echo "smoke done $(date -u +%T)" >> "$OUT/log.txt"
python3 - >> "$OUT/log.txt" 2>&1 <<'PY'
import torch, torch.nn.functional as F
from sdvideo.models import fused_frame_attention as ffa
from sdvideo.models.temporal_attention import apply_rotary, rotary_cos_sin
def reference(qkv, cos, sin, heads):  # fp32 tensor ops
    n, f, c3 = qkv.shape
    q, k, v = qkv.float().view(n, f, 3, heads, c3 // 3 // heads).permute(2, 0, 3, 1, 4)
    q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
    return F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(n, f, c3 // 3)
for dtype in (torch.float32, torch.float16, torch.bfloat16):
    for frames, heads, d in ((1, 1, 32), (5, 2, 64), (16, 5, 64), (20, 2, 32), (32, 3, 64)):
        torch.manual_seed(0)
        qkv = torch.randn(777, frames, 3 * heads * d, device="cuda", dtype=dtype, requires_grad=True)
        cos, sin = rotary_cos_sin(frames, d, 10000.0, "cuda")
        out = ffa.fused_frame_attention(qkv, cos, sin, heads)
        ref_in = qkv.detach().float().requires_grad_(True)
        ref = reference(ref_in, cos, sin, heads)
        g = torch.randn_like(ref)
        (got,), (want,) = torch.autograd.grad(out, qkv, g.to(dtype)), torch.autograd.grad(ref, ref_in, g)
        print(f"fused attention on cuda {dtype} frames={frames} heads={heads} d={d}: max |out diff| "
              f"{(out.float() - ref).abs().max():.2e}, max |grad diff| {(got.float() - want).abs().max():.2e} "
              f"(max |grad| {want.abs().max():.2f})", flush=True)
PY
cat "$OUT/log.txt"
