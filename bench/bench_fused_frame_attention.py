"""The fused Triton temporal attention against the tensor-op path it replaces, at SD 1.5's sizes.

For each UNet level (2 x 16 frames, bf16): the attention alone, from the fused q/k/v projection
(sequences, frames, 3 * channels) to the output projection's input (sequences, frames, channels) --
the fused kernel, and the compiled tensor ops (rotary, two batched matmuls around an fp32 softmax,
layout copies) -- forward, and forward + backward with a given output gradient; then the whole
compiled `TemporalTransformer` on channels-last frames with and without the kernel; and how far the
two paths' outputs and gradients are apart (and each from an fp32 reference).

    python bench/bench_fused_frame_attention.py --json out.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from gpu_timing import emit, time_calls, write_rows  # noqa: E402
from gpu_turns import GpuTurns, add_turns_arguments, run_in_turns  # noqa: E402

from sdvideo.models import fused_frame_attention as ffa  # noqa: E402
from sdvideo.models.temporal_attention import TemporalTransformer, apply_rotary, frame_attention, rotary_cos_sin  # noqa: E402

SHAPES = [(320, 64), (640, 32), (1280, 16), (1280, 8)]  # (channels, latent side) of SD 1.5's levels


def tensor_ops(qkv: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, heads: int) -> torch.Tensor:
    """What `TemporalTransformer.attention` runs between its projections without the kernel."""
    n, f, c3 = qkv.shape
    q, k, v = qkv.view(n, f, 3, heads, c3 // 3 // heads).permute(2, 0, 3, 1, 4)
    cos, sin = cos.to(q.dtype), sin.to(q.dtype)
    q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
    return frame_attention(q, k, v).transpose(1, 2).reshape(n, f, c3 // 3)


def forward_backward(fn, x: torch.Tensor, grad: torch.Tensor):
    def step():
        torch.autograd.backward(fn(x), grad)
        x.grad = None
    return step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--json", default=None)
    add_turns_arguments(ap)
    args = ap.parse_args()
    run_in_turns(run, args)


def run(args: argparse.Namespace, turns: GpuTurns) -> None:
    torch.backends.cudnn.benchmark = True
    rows: list[dict] = []
    compiled_ops = torch.compile(tensor_ops, dynamic=False)
    cases = []
    for channels, side in SHAPES:  # build and compile everything first (outside the turn)
        torch.manual_seed(0)
        n, f = args.batch * side * side, args.frames
        layer = TemporalTransformer(channels).cuda()
        for p in layer.parameters():
            p.data.add_(0.02 * torch.randn_like(p))
        heads = layer.heads
        qkv = torch.randn(n, f, 3 * channels, device="cuda", dtype=torch.bfloat16, requires_grad=True)
        cos, sin = rotary_cos_sin(f, channels // heads, 10000.0, "cuda")
        grad = torch.randn(n, f, channels, device="cuda", dtype=torch.bfloat16)
        x = torch.randn(args.batch * f, channels, side, side, device="cuda").to(memory_format=torch.channels_last)
        x.requires_grad_(True)
        compiled_layer = torch.compile(layer, dynamic=False)
        row = dict(channels=channels, side=side, sequences=n, heads=heads, frames=f)
        fused = lambda t, heads=heads, cos=cos, sin=sin: ffa.fused_frame_attention(t, cos, sin, heads)  # noqa: E731
        plain = lambda t, heads=heads, cos=cos, sin=sin: compiled_ops(t, cos, sin, heads)  # noqa: E731
        exact_in = qkv.detach().float().requires_grad_(True)
        exact = tensor_ops(exact_in, cos, sin, heads)
        (exact_grad,) = torch.autograd.grad(exact, exact_in, grad.float())
        outputs = {}
        for name, fn in (("fused", fused), ("tensor_ops", plain)):
            out = fn(qkv)
            (g,) = torch.autograd.grad(out, qkv, grad)
            outputs[name] = (out.float(), g.float())
            row[f"{name}_vs_fp32_max_abs_diff_out"] = float((out.float() - exact.detach()).abs().max())
            row[f"{name}_vs_fp32_max_abs_diff_grad"] = float((g.float() - exact_grad).abs().max())
        row["max_abs_diff_out"] = float((outputs["fused"][0] - outputs["tensor_ops"][0]).abs().max())
        row["max_abs_diff_grad"] = float((outputs["fused"][1] - outputs["tensor_ops"][1]).abs().max())
        row["max_abs_out"], row["max_abs_grad"] = float(exact.detach().abs().max()), float(exact_grad.abs().max())
        with torch.autocast("cuda", dtype=torch.bfloat16):
            for enabled in (True, False):  # compile both paths of the layer
                ffa.ENABLED = enabled
                torch.autograd.backward(compiled_layer(x, f).float().sum())
        ffa.ENABLED = True
        cases.append((row, qkv, grad, fused, plain, compiled_layer, x, f))
    with turns():
        for row, qkv, grad, fused, plain, compiled_layer, x, f in cases:
            for name, fn in (("fused", fused), ("tensor_ops", plain)):
                with torch.no_grad():
                    row[f"forward_{name}_ms"] = time_calls(lambda fn=fn: fn(qkv))
                row[f"forward_backward_{name}_ms"] = time_calls(forward_backward(fn, qkv, grad))
            layer_grad = torch.randn(x.shape, device="cuda").to(memory_format=torch.channels_last)
            with torch.autocast("cuda", dtype=torch.bfloat16):
                for enabled in (True, False):
                    ffa.ENABLED = enabled
                    name = "fused" if enabled else "tensor_ops"
                    layer = lambda t, f=f: compiled_layer(t, f)  # noqa: E731
                    with torch.no_grad():
                        row[f"layer_forward_{name}_ms"] = time_calls(lambda: layer(x))
                    row[f"layer_forward_backward_{name}_ms"] = time_calls(forward_backward(layer, x, layer_grad))
            ffa.ENABLED = True
            emit(row, rows)
    write_rows(rows, args.json)


if __name__ == "__main__":
    main()
