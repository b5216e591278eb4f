"""Attention at SD 1.5's shapes in a 2 x 16-frame step: which SDPA kernel is fastest (forward + backward, bf16).

Spatial self-attention runs at 4,096 tokens with head size 40 at the largest feature map, a size flash
kernels handle poorly; run 14's compiled step spent 21.5 % of its GPU time in cuDNN's flash attention.
For each shape this times every SDPA backend PyTorch offers, and the same attention with the head size
zero-padded to a multiple of 64 (scores, softmax and output are unchanged: zero channels add nothing to
q.k, and the output's padded channels are sliced off), so a change to the attention processors is chosen
from measurements.

    python bench/bench_attention.py --json out.json      # needs a GPU
"""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu_timing import emit, time_forward, time_forward_backward, write_rows  # noqa: E402

FRAMES = 32  # batch 2 x 16 frames: every spatial attention runs over 32 images
# (name, batch, heads, query tokens, key tokens, head size)
SHAPES = [
    ("self 64x64", FRAMES, 8, 4096, 4096, 40),
    ("self 32x32", FRAMES, 8, 1024, 1024, 80),
    ("self 16x16", FRAMES, 8, 256, 256, 160),
    ("cross 64x64", FRAMES, 8, 4096, 77, 40),
    ("temporal 64x64", 2 * 4096, 5, 16, 16, 64),
]
BACKENDS = {
    "flash": SDPBackend.FLASH_ATTENTION,
    "cudnn": SDPBackend.CUDNN_ATTENTION,
    "efficient": SDPBackend.EFFICIENT_ATTENTION,
}


def padded_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    d = q.shape[-1]
    pad = (-d) % 64
    q, k, v = (F.pad(t, (0, pad)) for t in (q, k, v))
    return F.scaled_dot_product_attention(q, k, v, scale=1 / math.sqrt(d))[..., :d]


def math_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Scores, softmax (fp32) and weighted sum as plain tensor ops: under torch.compile, two batched GEMMs
    around one fused softmax kernel; the (queries x keys) matrix is materialised, cheap for few keys."""
    scores = (q @ k.transpose(-1, -2)).float() * q.shape[-1] ** -0.5
    return (scores.softmax(-1).to(q.dtype) @ v)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", default=None)
    ap.add_argument("--shapes", default="", help="comma list of shape names to keep (default: all)")
    ap.add_argument("--compiled-math", action="store_true", help="also the attention as compiled plain tensor ops, "
                    "and forward-only times (inference)")
    args = ap.parse_args()
    keep = set(filter(None, args.shapes.split(",")))
    rows = []
    compiled_math = torch.compile(math_attention, dynamic=False)
    for name, batch, heads, lq, lk, d in SHAPES:
        if keep and name not in keep:
            continue
        q = torch.randn(batch, heads, lq, d, device="cuda", dtype=torch.bfloat16, requires_grad=True)
        k = torch.randn(batch, heads, lk, d, device="cuda", dtype=torch.bfloat16, requires_grad=True)
        v = torch.randn_like(k, requires_grad=True)
        reference = F.scaled_dot_product_attention(q, k, v)
        row = dict(shape=name, batch=batch, heads=heads, query_tokens=lq, key_tokens=lk, head_size=d,
                   fwd_gflop=4 * batch * heads * lq * lk * d / 1e9)
        for label, fn in [("default", F.scaled_dot_product_attention), ("padded to 64", padded_attention)]:
            for backend_name, backend in [("auto", None), *BACKENDS.items()]:
                key = f"{label}, {backend_name}"
                try:
                    with sdpa_kernel([backend]) if backend is not None else contextlib.nullcontext():
                        row[key + " ms"] = time_forward_backward(fn, q, k, v, iters=10)
                        row[key + " max diff"] = float((fn(q, k, v) - reference).abs().max())
                except RuntimeError as err:  # this backend does not take this shape
                    row[key + " ms"] = f"n/a: {str(err).splitlines()[0][:80]}"
        if args.compiled_math:
            row["compiled math ms"] = time_forward_backward(compiled_math, q, k, v, iters=10)
            row["compiled math max diff"] = float((compiled_math(q, k, v) - reference).abs().max())
            row["forward only, auto ms"] = time_forward(F.scaled_dot_product_attention, q, k, v, iters=10)
            row["forward only, compiled math ms"] = time_forward(compiled_math, q, k, v, iters=10)
        emit(row, rows)
    write_rows(rows, args.json)


if __name__ == "__main__":
    main()
