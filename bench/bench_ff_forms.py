"""Projection and feed-forward forms at SD 1.5's sizes for one guided 16-frame call (2 x 16 frames, bf16,
inference): what each costs alone, to choose what to fuse.

- the temporal feed-forward's first matmul and GELU: compiled Linear + exact GELU (what runs now),
  compiled Linear + tanh GELU, and cuBLASLt's fused bias + GELU epilogue (`torch._addmm_activation`,
  tanh GELU); with each one's distance from the fp32 exact-GELU result;
- the spatial self-attention's q, k, v: three compiled matmuls against one over the concatenated weights;
- GEGLU as diffusers runs it (compiled: cuBLAS projection, then the gate kernel) and its projection alone;
- an output projection (channels -> channels, with bias) and the residual add after it, compiled: as `addmm`
  (cuBLAS's bias epilogue) + add, and as `mm` with the bias joining the add; the matmul alone.

    python bench/bench_ff_forms.py --json out.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gpu_timing import emit, time_forward, write_rows  # noqa: E402
from gpu_turns import GpuTurns, add_turns_arguments, run_in_turns  # noqa: E402

LEVELS = [(320, 64), (640, 32), (1280, 16)]  # (channels, latent side) of SD 1.5's transformer levels


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", type=int, default=2, help="videos per call (2: both CFG halves)")
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--json", default=None)
    add_turns_arguments(ap)
    run_in_turns(run, ap.parse_args())


def run(args: argparse.Namespace, turns: GpuTurns) -> None:
    dev, bf16 = "cuda", torch.bfloat16
    rows: list[dict] = []
    ff_exact = torch.compile(lambda x, w, b: F.gelu(F.linear(x, w, b)), dynamic=False)
    ff_tanh = torch.compile(lambda x, w, b: F.gelu(F.linear(x, w, b), approximate="tanh"), dynamic=False)
    three = torch.compile(lambda x, wq, wk, wv: (F.linear(x, wq), F.linear(x, wk), F.linear(x, wv)), dynamic=False)
    one = torch.compile(lambda x, w: F.linear(x, w).chunk(3, -1), dynamic=False)
    geglu = torch.compile(lambda x, w, b: (lambda h, g: h * F.gelu(g))(*F.linear(x, w, b).chunk(2, -1)), dynamic=False)
    proj = torch.compile(lambda x, w, b: F.linear(x, w, b), dynamic=False)
    out_addmm = torch.compile(lambda x, w, b, r: F.linear(x, w, b) + r, dynamic=False)
    out_mm = torch.compile(lambda x, w, b, r: F.linear(x, w) + b + r, dynamic=False)
    mm = torch.compile(lambda x, w: F.linear(x, w), dynamic=False)
    cases = []
    for channels, side in LEVELS:
        torch.manual_seed(0)
        m = args.videos * args.frames * side * side
        x = torch.randn(m, channels, device=dev, dtype=bf16)
        w1 = torch.randn(2 * channels, channels, device=dev, dtype=bf16) * channels**-0.5
        b1 = torch.randn(2 * channels, device=dev, dtype=bf16) * 0.1
        wq, wk, wv = (torch.randn(channels, channels, device=dev, dtype=bf16) * channels**-0.5 for _ in range(3))
        wqkv = torch.cat([wq, wk, wv])
        wg = torch.randn(8 * channels, channels, device=dev, dtype=bf16) * channels**-0.5
        bg = torch.randn(8 * channels, device=dev, dtype=bf16) * 0.1
        exact = F.gelu(F.linear(x.float(), w1.float(), b1.float()))
        row = dict(channels=channels, side=side, tokens=m)
        fused = torch._addmm_activation(b1, x, w1.t(), use_gelu=True)
        for name, out in (("exact", ff_exact(x, w1, b1)), ("tanh", ff_tanh(x, w1, b1)), ("addmm_gelu", fused)):
            row[f"ff_{name}_max_abs_diff"] = float((out.float() - exact).abs().max())
        row["qkv_max_abs_diff"] = max(float((a - b).abs().max()) for a, b in zip(three(x, wq, wk, wv), one(x, wqkv)))
        cases.append((row, x, w1, b1, wq, wk, wv, wqkv, wg, bg))
    with turns():
        for row, x, w1, b1, wq, wk, wv, wqkv, wg, bg in cases:
            row["ff_exact_ms"] = time_forward(ff_exact, x, w1, b1, iters=50)
            row["ff_tanh_ms"] = time_forward(ff_tanh, x, w1, b1, iters=50)
            row["ff_addmm_gelu_ms"] = time_forward(lambda: torch._addmm_activation(b1, x, w1.t(), use_gelu=True), iters=50)
            row["ff_linear_only_ms"] = time_forward(proj, x, w1, b1, iters=50)
            row["qkv_three_ms"] = time_forward(three, x, wq, wk, wv, iters=50)
            row["qkv_one_ms"] = time_forward(one, x, wqkv, iters=50)
            row["geglu_ms"] = time_forward(geglu, x, wg, bg, iters=50)
            row["geglu_projection_only_ms"] = time_forward(proj, x, wg, bg, iters=50)
            row["out_addmm_residual_ms"] = time_forward(out_addmm, x, wq, b1[:x.shape[1]], x, iters=50)
            row["out_mm_bias_residual_ms"] = time_forward(out_mm, x, wq, b1[:x.shape[1]], x, iters=50)
            row["out_mm_only_ms"] = time_forward(mm, x, wq, iters=50)
            row["out_addmm_only_ms"] = time_forward(proj, x, wq, b1[:x.shape[1]], iters=50)
            row["gpu"] = torch.cuda.get_device_name()
            emit(row, rows)
    write_rows(rows, args.json)


if __name__ == "__main__":
    main()
