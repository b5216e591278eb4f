"""Nearest 2x upsampling + 3 x 3 convolution: diffusers' `Upsample2D` against sdvideo's four 2 x 2 convolutions.

For the upsamplers of SD 1.5's UNet (32 frames: 2 x 16 frames, or one guided 16-frame call) and of its VAE
decoder (16 frames), bf16, channels-last: forward alone (eager, as the VAE decode and uncompiled sampling run
them, and compiled), forward + input gradient (frozen weights, compiled, as a training step's block regions run
them), and the largest difference of each output (and input gradient) from an fp32 reference. sdvideo's path runs
eager as a 2 x 2 convolution (cuDNN); compiled, in both of its forms: that convolution, and one matmul plus
fused shifted sums.

    python bench/bench_upsample.py --json out.json
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from gpu_timing import emit, time_calls, write_rows  # noqa: E402
from gpu_turns import GpuTurns, add_turns_arguments, run_in_turns  # noqa: E402

from diffusers.models.upsampling import Upsample2D  # noqa: E402

from sdvideo.models.lean_conv import make_convs_lean  # noqa: E402
from sdvideo.fast.subpixel_upsample import install_subpixel_upsamplers  # noqa: E402

# (where, channels in = out, input side, batch): SD 1.5 at 512 px
SHAPES = [("unet up 0", 1280, 8, 32), ("unet up 1", 1280, 16, 32), ("unet up 2", 640, 32, 32),
          ("vae up 0", 512, 64, 16), ("vae up 1", 512, 128, 16), ("vae up 2", 256, 256, 16)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="", help="only the shapes whose name starts with this (e.g. unet)")
    ap.add_argument("--json", default=None)
    add_turns_arguments(ap)
    args = ap.parse_args()
    run_in_turns(run, args)


def run(args: argparse.Namespace, turns: GpuTurns) -> None:
    import torch._dynamo

    torch.backends.cudnn.benchmark = True
    torch._dynamo.config.recompile_limit = 64  # one forward code object, compiled for every shape and form
    rows: list[dict] = []
    cases = []
    for where, channels, side, batch in [s for s in SHAPES if s[0].startswith(args.only)]:  # built outside the turn
        torch.manual_seed(0)
        plain = Upsample2D(channels, use_conv=True).cuda().requires_grad_(False)
        make_convs_lean(plain)  # as in the video UNet: frozen convs keep no activations
        subpixel = copy.deepcopy(plain)
        install_subpixel_upsamplers(subpixel)
        for m in (plain, subpixel):
            m.to(torch.bfloat16, memory_format=torch.channels_last)
        x = torch.randn(batch, channels, side, side, device="cuda").to(torch.bfloat16, memory_format=torch.channels_last)
        grad = torch.randn(batch, channels, 2 * side, 2 * side, device="cuda").to(torch.bfloat16,
                                                                                 memory_format=torch.channels_last)
        reference = copy.deepcopy(plain).float()
        x32 = x[:2].float().requires_grad_(True)  # two frames: the fp32 copies of the VAE's largest maps are GiBs
        exact = reference(x32)
        (exact_grad,) = torch.autograd.grad(exact, x32, grad[:2].float())
        row = dict(where=where, channels=channels, side=side, batch=batch,
                   gflop_interpolate=2 * batch * (2 * side) ** 2 * channels ** 2 * 9 / 1e9,
                   gflop_subpixel=2 * batch * (side + 1) ** 2 * 4 * channels ** 2 * 4 / 1e9)
        # eager: each module once (the form applies to compiled graphs only); compiled: sdvideo's path in both forms
        eager = {"interpolate": plain, "subpixel": subpixel}
        forms = {"interpolate": (plain, None), "subpixel_matmul": (subpixel, "matmul"), "subpixel_conv": (subpixel, "conv")}
        for name, module in eager.items():
            xg = x.clone().requires_grad_(True)
            out = module(xg)
            (g,) = torch.autograd.grad(out, xg, grad)
            row[f"{name}_vs_fp32_max_abs_diff_out"] = float((out[:2].float() - exact.detach()).abs().max())
            row[f"{name}_vs_fp32_max_abs_diff_grad"] = float((g[:2].float() - exact_grad).abs().max())
            row[f"{name}_out_channels_last"] = out.is_contiguous(memory_format=torch.channels_last)
            del out, g
        compiled = {}
        for name, (module, form) in forms.items():
            module = copy.deepcopy(module)
            if form:
                install_subpixel_upsamplers(module, form)  # the module's compiled form (diffusers' module has none)
            module = torch.compile(module, dynamic=False)
            compiled[name] = (module, form)
            xg = x.clone().requires_grad_(True)
            with torch.no_grad():
                out = module(x)
            (g,) = torch.autograd.grad(module(xg), xg, grad)
            row[f"{name}_compiled_vs_fp32_max_abs_diff_out"] = float((out[:2].float() - exact.detach()).abs().max())
            row[f"{name}_compiled_vs_fp32_max_abs_diff_grad"] = float((g[:2].float() - exact_grad).abs().max())
            del out, g
        row["max_abs_out"] = float(exact.detach().abs().max())
        del reference, x32, exact, exact_grad
        torch.cuda.empty_cache()
        cases.append((row, x, grad, eager, compiled))
    with turns():
        for row, x, grad, eager, compiled in cases:
            with torch.no_grad():
                for name, module in eager.items():
                    row[f"forward_eager_{name}_ms"] = time_calls(lambda m=module: m(x))
            for name, (module, form) in compiled.items():
                xg = x.clone().requires_grad_(True)
                with torch.no_grad():
                    row[f"forward_compiled_{name}_ms"] = time_calls(lambda m=module: m(x))
                row[f"forward_backward_compiled_{name}_ms"] = time_calls(
                    lambda m=module: torch.autograd.grad(m(xg), xg, grad))
            emit(row, rows)
    write_rows(rows, args.json)


if __name__ == "__main__":
    main()
