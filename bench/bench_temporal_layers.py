"""Micro-benchmark of the temporal layers at SD 1.5 feature-map sizes (forward + backward, bf16).

Compares ways to compute the kernel-3 temporal convolution (cuDNN 3-D convolution with a (3,1,1)
kernel in NCDHW vs channels-last memory -- what `TemporalConv` runs --, a (3,1) 2-D convolution on
the channels-last frames viewed as a (batch, c, frames, h*w) image, the 3-D convolution with its
backward as GEMMs, and three shifted 1x1 matmuls), forward + backward and forward alone, and times
the temporal transformer (eager; with --compile compiled on channels-last frames as in the compiled
model), so the fastest form is chosen from measurements. --profile writes kernel tables at the
largest map (3-D convolution, compiled transformer).

    python bench/bench_temporal_layers.py --json out.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from gpu_timing import emit, kernel_profile, time_forward, time_forward_backward, write_rows  # noqa: E402

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


def conv2d_over_frames(x, w, b, frames):
    # Channels-last frames (b, f, h*w, c in memory) seen as a channels-last (b, c, f, h*w) image: a (3, 1)
    # 2-D convolution, no copies. Run 19: no faster than the 3-D form (2.29 vs 2.22 ms at 320 x 64 x 64).
    bf, c, h, wd = x.shape
    image = x.permute(0, 2, 3, 1).reshape(bf // frames, frames, h * wd, c).permute(0, 3, 1, 2)
    out = F.conv2d(image, w[..., None], b, padding=(w.shape[2] // 2, 0))
    return out.permute(0, 2, 3, 1).reshape(bf, h, wd, out.shape[1]).permute(0, 3, 1, 2)


class GemmBackwardConv(torch.autograd.Function):
    """cuDNN's 3-D convolution forward; backward as a 3-D convolution with the flipped, transposed
    weight (input gradient) and one batched GEMM per kernel tap (weight gradient). Channels-last only."""

    @staticmethod
    def forward(ctx, x, w, b, frames):
        ctx.save_for_backward(x, w)
        ctx.frames = frames
        return conv3d_over_frames(x, w, b, frames)

    @staticmethod
    def backward(ctx, grad):
        x, w = ctx.saved_tensors
        f, k = ctx.frames, w.shape[2]
        bf, c, h, wd = x.shape
        grad = grad.contiguous(memory_format=torch.channels_last)
        gx = conv3d_over_frames(grad, w.flip(2).transpose(0, 1), None, f)
        xs = x.permute(0, 2, 3, 1).reshape(bf // f, f, h * wd, c)  # views of channels-last memory
        gs = grad.permute(0, 2, 3, 1).reshape(bf // f, f, h * wd, -1)
        taps = []
        for tap in range(k):
            s = tap - k // 2  # output frame t reads input frame t + s
            g_rows = gs[:, max(0, -s): f - max(0, s)].reshape(bf // f, -1, gs.shape[-1])  # (b, M, c_out)
            x_rows = xs[:, max(0, s): f - max(0, -s)].reshape(bf // f, -1, c)  # (b, M, c)
            taps.append(torch.bmm(g_rows.transpose(1, 2), x_rows).sum(0))  # (c_out, c)
        return gx, torch.stack(taps, dim=-1), grad.sum((0, 2, 3)), None


def gemm_backward_error(x, w, b, frames) -> float:
    """Largest difference between GemmBackwardConv's gradients and autograd's through cuDNN, relative to
    the largest gradient value (per input, the worst of the three)."""
    grads = []
    for fn in (conv3d_over_frames, GemmBackwardConv.apply):
        args = [t.detach().requires_grad_(True) for t in (x, w, b)]
        fn(*args, frames).float().square().mean().backward()
        grads.append([a.grad.float() for a in args])
    return max(float((g - r).abs().max() / r.abs().max()) for g, r in zip(*grads))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--json", default=None)
    ap.add_argument("--shapes", type=int, default=len(SHAPES), help="time the first N (channels, side) shapes")
    ap.add_argument("--compile", action="store_true", help="also time the temporal transformer under torch.compile")
    ap.add_argument("--profile", default=None,
                    help="write kernel tables at the largest map (the 3-D convolution; the compiled transformer) here")
    args = ap.parse_args()
    torch.backends.cudnn.benchmark = True
    rows = []
    for c, side in SHAPES[: args.shapes]:
        bf = args.batch * args.frames
        x = torch.randn(bf, c, side, side, device="cuda", dtype=torch.bfloat16, requires_grad=True)
        xcl = x.detach().to(memory_format=torch.channels_last).requires_grad_(True)
        w = torch.randn(c, c, 3, device="cuda", dtype=torch.bfloat16, requires_grad=True)
        b = torch.zeros(c, device="cuda", dtype=torch.bfloat16, requires_grad=True)
        ref = conv3d_over_frames(x, w, b, args.frames)
        alt = shifted_matmul(xcl, w, b, args.frames)
        conv2d = conv2d_over_frames(xcl, w, b, args.frames)
        row = dict(channels=c, side=side, max_abs_diff=float((ref - alt).abs().max()),
                   ref_abs_max=float(ref.abs().max()), conv2d_max_abs_diff=float((ref - conv2d).abs().max()))
        row["conv3d_ms"] = time_forward_backward(conv3d_over_frames, x, w, b, args.frames)
        row["conv3d_channels_last_ms"] = time_forward_backward(conv3d_over_frames, xcl, w, b, args.frames)
        row["conv2d_channels_last_ms"] = time_forward_backward(conv2d_over_frames, xcl, w, b, args.frames)
        row["gemm_backward_channels_last_ms"] = time_forward_backward(GemmBackwardConv.apply, xcl, w, b, args.frames)
        row["gemm_backward_rel_error"] = gemm_backward_error(xcl, w, b, args.frames)
        row["shifted_matmul_ms"] = time_forward_backward(shifted_matmul, xcl, w, b, args.frames)
        row["forward_conv3d_channels_last_ms"] = time_forward(conv3d_over_frames, xcl, w, b, args.frames)
        row["forward_conv2d_channels_last_ms"] = time_forward(conv2d_over_frames, xcl, w, b, args.frames)
        if args.profile and c == SHAPES[0][0]:
            Path(args.profile.replace(".txt", "-conv3d.txt")).write_text(kernel_profile(
                lambda: conv3d_over_frames(xcl, w, b, args.frames).float().square().mean().backward()))
        attn = TemporalTransformer(c).cuda()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            row["temporal_transformer_ms"] = time_forward_backward(lambda t: attn(t, args.frames), x)
            if args.compile:  # channels-last, as in the compiled model
                compiled = torch.compile(attn, dynamic=False)
                layer = lambda t: compiled(t, args.frames)  # noqa: E731
                row["temporal_transformer_compiled_cl_ms"] = time_forward_backward(layer, xcl)
                row["forward_temporal_transformer_compiled_cl_ms"] = time_forward(layer, xcl)
                if args.profile and c == SHAPES[0][0]:
                    Path(args.profile).write_text(kernel_profile(
                        lambda: compiled(xcl, args.frames).float().square().mean().backward()))
        flops = 2 * bf * side * side * c * c * 3
        best = min(row[k] for k in ("conv3d_ms", "conv3d_channels_last_ms", "conv2d_channels_last_ms",
                                     "gemm_backward_channels_last_ms", "shifted_matmul_ms"))
        row["conv_tflops_at_best"] = flops * 3 / (best * 1e-3) / 1e12
        emit(row, rows)
    write_rows(rows, args.json)


if __name__ == "__main__":
    main()
