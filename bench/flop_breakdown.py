"""Forward FLOPs of the SD 1.5-size video UNet by operator (torch.utils.flop_counter, meta tensors: no
weights, no GPU, seconds on a CPU).

    python bench/flop_breakdown.py --batch 2 --frames 16
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from sdvideo.models.presets import preset  # noqa: E402


def flops_by_operator(batch: int, frames: int, side: int = 64) -> dict[str, float]:
    from diffusers import UNet2DConditionModel
    from torch.utils.flop_counter import FlopCounterMode

    from sdvideo.models.video_unet import inflate

    with torch.device("meta"):
        model = inflate(UNet2DConditionModel(**preset("sd15")["unet"]))
        x = torch.randn(batch, 4, frames, side, side)
        t, text, fps = torch.full((batch,), 500), torch.randn(batch, 77, 768), torch.full((batch,), 8.0)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x, t, text, fps=fps)
    return {str(op): float(n) for op, n in counter.get_flop_counts()["Global"].items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--frames", type=int, default=16)
    args = ap.parse_args()
    by_op = flops_by_operator(args.batch, args.frames)
    total = sum(by_op.values())
    print(f"forward, {args.batch} x {args.frames} frames at 512 px: {total / 1e12:.2f} TFLOP")
    for op, n in sorted(by_op.items(), key=lambda kv: -kv[1]):
        print(f"  {op:24s} {n / 1e12:7.2f} TFLOP  {100 * n / total:5.1f} %")


if __name__ == "__main__":
    main()
