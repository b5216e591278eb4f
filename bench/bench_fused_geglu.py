"""The fused GEGLU matmul (models/fused_geglu.py) against what diffusers runs -- cuBLAS's projection,
then the gate kernel (compiled, as in the compiled model) -- at SD 1.5's feed-forward sizes for one
guided 16-frame call (2 x 16 frames, bf16, inference), with the two outputs' distance from fp32.

    python bench/bench_fused_geglu.py --json out.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_fused_frame_attention import timed  # noqa: E402
from gpu_timing import emit, write_rows  # noqa: E402
from gpu_turns import GpuTurns  # noqa: E402

from sdvideo.models import fused_geglu  # noqa: E402

SHAPES = [(320, 64), (640, 32), (1280, 16), (1280, 8)]  # (channels, latent side) of SD 1.5's levels


def projection_then_gate(x, weight, bias):
    value, gate = torch.nn.functional.linear(x, weight, bias).chunk(2, dim=-1)
    return value * torch.nn.functional.gelu(gate)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=32, help="frames in a call (2 x 16: both CFG halves)")
    ap.add_argument("--json", default=None)
    ap.add_argument("--turns", default=None)
    ap.add_argument("--processes", type=int, default=1)
    args = ap.parse_args()
    turns = GpuTurns(args.turns, args.processes)
    try:
        run(args, turns)
    finally:
        turns.arrive()


@torch.no_grad()
def run(args: argparse.Namespace, turns: GpuTurns) -> None:
    compiled = torch.compile(projection_then_gate, dynamic=False)
    rows, cases = [], []
    for channels, side in SHAPES:
        torch.manual_seed(0)
        m, n = args.images * side * side, 4 * channels
        x = torch.randn(m, channels, device="cuda", dtype=torch.bfloat16)
        weight = (torch.randn(2 * n, channels, device="cuda") / channels**0.5).bfloat16()
        bias = (0.1 * torch.randn(2 * n, device="cuda")).bfloat16()
        exact = projection_then_gate(x.float(), weight.float(), bias.float())
        fused, plain = fused_geglu.geglu(x, weight, bias), compiled(x, weight, bias)  # autotunes / compiles
        row = dict(channels=channels, side=side, rows=m, k=channels, n=n, gflop=2 * m * channels * 2 * n / 1e9,
                   fused_vs_fp32=float((fused.float() - exact).abs().max()),
                   plain_vs_fp32=float((plain.float() - exact).abs().max()), max_abs=float(exact.abs().max()))
        cases.append((row, x, weight, bias))
    with turns():
        for row, x, weight, bias in cases:
            row["fused_ms"] = timed(lambda: fused_geglu.geglu(x, weight, bias))
            row["plain_compiled_ms"] = timed(lambda: compiled(x, weight, bias))
            row["cublas_projection_only_ms"] = timed(lambda: torch.nn.functional.linear(x, weight, bias))
            row["fused_tflops"] = row["gflop"] / row["fused_ms"]
            emit(row, rows)
    write_rows(rows, args.json)


if __name__ == "__main__":
    main()
