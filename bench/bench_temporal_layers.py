"""Micro-benchmark of the temporal layers at SD 1.5 feature-map sizes (forward + backward, bf16).

Compares ways to compute the kernel-3 temporal convolution (cuDNN 3-D convolution with a (3,1,1)
kernel in NCDHW vs channels-last memory, and three shifted 1x1 matmuls on channels-last data), and
times the temporal transformer (eager, and with --compile compiled), so the fastest form is chosen
from measurements.

    python bench/bench_temporal_layers.py --json out.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from gpu_timing import time_forward_backward  # noqa: E402

from sdvideo.models.temporal_attention import TemporalTransformer  # noqa: E402
from sdvideo.models.temporal_conv import conv3d_over_frames  # noqa: E402  (what TemporalConv runs)

SHAPES = [(320, 64), (640, 32), (1280, 16), (1280, 8)]  # (channels, latent side) of SD 1.5's levels


def shifted_matmul(x, w, b, frames):
    # x channels-last (bf, c, h, w) -> (b, f, h*w, c); out[f] = W0 x[f-1] + W1 x[f] + W2 x[f+1] + b
    bf, c, h, wd = x.shape
    t = x.permute(0, 2, 3, 1).reshape(bf // frames, frames, h * wd, c)
    out = F.linear(t, w[:, :, 1], b)
    out[:, 1:] += F.linear(t[:, :-1], w[:, :, 0])
    out[:, :-1] += F.linear(t[:, 1:], w[:, :, 2])
    return out.reshape(bf, h, wd, c).permute(0, 3, 1, 2)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--json", default=None)
    ap.add_argument("--compile", action="store_true", help="also time the temporal transformer under torch.compile")
    args = ap.parse_args()
    torch.backends.cudnn.benchmark = True
    rows = []
    for c, side in SHAPES:
        bf = args.batch * args.frames
        x = torch.randn(bf, c, side, side, device="cuda", dtype=torch.bfloat16, requires_grad=True)
        xcl = x.detach().to(memory_format=torch.channels_last).requires_grad_(True)
        w = torch.randn(c, c, 3, device="cuda", dtype=torch.bfloat16, requires_grad=True)
        b = torch.zeros(c, device="cuda", dtype=torch.bfloat16, requires_grad=True)
        ref = conv3d_over_frames(x, w, b, args.frames)
        alt = shifted_matmul(xcl, w, b, args.frames)
        row = dict(channels=c, side=side, max_abs_diff=float((ref - alt).abs().max()), ref_abs_max=float(ref.abs().max()))
        row["conv3d_ms"] = time_forward_backward(conv3d_over_frames, x, w, b, args.frames)
        row["conv3d_channels_last_ms"] = time_forward_backward(conv3d_over_frames, xcl, w, b, args.frames)
        row["shifted_matmul_ms"] = time_forward_backward(shifted_matmul, xcl, w, b, args.frames)
        attn = TemporalTransformer(c).cuda()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            row["temporal_transformer_ms"] = time_forward_backward(lambda t: attn(t, args.frames), x)
            if args.compile:
                compiled = torch.compile(attn)
                row["temporal_transformer_compiled_ms"] = time_forward_backward(lambda t: compiled(t, args.frames), x)
        flops = 2 * bf * side * side * c * c * 3
        best = min(row["conv3d_ms"], row["conv3d_channels_last_ms"], row["shifted_matmul_ms"])
        row["conv_tflops_at_best"] = flops * 3 / (best * 1e-3) / 1e12
        print(json.dumps(row), flush=True)
        rows.append(row)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
