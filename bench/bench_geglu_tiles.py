"""GEGLU's one-matmul kernel (models/fused_geglu.py) tile by tile at SD 1.5's four transformer levels for one
guided 16-frame call (2 x 16 frames, bf16, inference): every tile of `fused_geglu.TILES` with the product's
GELU, then the fastest tile with each other GELU form (libdevice's erf, the tanh form on the hardware tanh,
none: the matmul and its store alone); against GEGLU as diffusers runs it (compiled: cuBLAS's projection,
then the gate kernel) and the projection alone. Each row: milliseconds and the distance from fp32.

    python bench/bench_geglu_tiles.py --json out.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from gpu_timing import emit, time_forward, write_rows  # noqa: E402

from sdvideo.models import fused_geglu  # noqa: E402

LEVELS = [(320, 64), (640, 32), (1280, 16), (1280, 8)]  # (channels, latent side)
GELUS = {3: "erf-as", 1: "erf-libdevice", 2: "tanh-approx", 0: "none"}  # fused_geglu._gelu's numbers


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=32, help="frames in a call (2 x 16: both CFG halves)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    rows: list[dict] = []
    plain = torch.compile(lambda x, w, b: (lambda h, g: h * F.gelu(g))(*F.linear(x, w, b).chunk(2, -1)), dynamic=False)
    proj = torch.compile(lambda x, w, b: F.linear(x, w, b), dynamic=False)
    for channels, side in LEVELS:
        torch.manual_seed(0)
        m = args.images * side * side
        x = torch.randn(m, channels, device="cuda", dtype=torch.bfloat16)
        w = torch.randn(8 * channels, channels, device="cuda", dtype=torch.bfloat16) * channels**-0.5
        b = torch.randn(8 * channels, device="cuda", dtype=torch.bfloat16) * 0.1
        exact = (lambda h, g: h * F.gelu(g))(*F.linear(x.float(), w.float(), b.float()).chunk(2, -1))
        out = torch.empty(m, 4 * channels, device="cuda", dtype=torch.bfloat16)
        base = dict(channels=channels, side=side, tokens=m, plain_ms=time_forward(plain, x, w, b, iters=50),
                    projection_only_ms=time_forward(proj, x, w, b, iters=50),
                    plain_max_abs_diff=float((plain(x, w, b).float() - exact).abs().max()))
        best = None
        for tile in fused_geglu.TILES:
            row = dict(base, tile=list(tile), gelu=GELUS[3])
            try:
                fused_geglu.launch(x, w, b, out, tile)
                row["max_abs_diff"] = float((out.float() - exact).abs().max())
                row["ms"] = time_forward(lambda: fused_geglu.launch(x, w, b, out, tile), iters=50)
            except Exception as err:  # noqa: BLE001 (out of shared memory or registers: recorded)
                row["error"] = f"{type(err).__name__}: {str(err)[:200]}"
            emit(row, rows)
            if "ms" in row and (best is None or row["ms"] < best[1]):
                best = (tile, row["ms"])
        for gelu in (1, 2, 0):
            if best is not None:
                row = dict(base, tile=list(best[0]), gelu=GELUS[gelu])
                fused_geglu.launch(x, w, b, out, best[0], gelu)
                row["max_abs_diff"] = float((out.float() - exact).abs().max())
                row["ms"] = time_forward(lambda: fused_geglu.launch(x, w, b, out, best[0], gelu), iters=50)
                emit(row, rows)
    write_rows(rows, args.json)


if __name__ == "__main__":
    main()
