"""GroupNorm forms at SD 1.5's sizes for one guided 16-frame call (32 channels-last bf16 frames, inference,
compiled, bf16 autocast): what inductor makes of each.

- `native`: `F.group_norm` (inductor's reference decomposition: Welford per (sample, group));
- `channel-stats`: `models/channel_stats_group_norm.py` (Welford per (sample, channel), groups combined);
- `sum-sumsq`: per-channel sums of x and x^2 (no Welford; fp32 cancellation where |mean| >> std), bench only.

Each in two patterns: `silu` (a resnet's norm1: GroupNorm -> SiLU -> bf16 for the convolution) and `add` (the
sum of two maps normalised, the sum also kept: a residual before the next norm), every output channels-last as
a compiled region writes it for the convolution after it (inductor's own choice for `native` is a transposing
store to NCHW, run 94). Rows give milliseconds per call launched one by one (`_ms`: at small shapes mostly
launch time) and per call replayed from a CUDA graph of 10 calls (`_graph_ms`: the kernels alone, as `sample`
runs them), the effective bandwidth of the latter (bytes the pattern must move / time), and each form's
largest difference from fp32.

    python bench/bench_group_norm.py --json out.json [--output-code]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from gpu_timing import emit, time_calls, time_forward, write_rows  # noqa: E402
from gpu_turns import GpuTurns, add_turns_arguments, run_in_turns  # noqa: E402

from sdvideo.models.channel_stats_group_norm import group_norm_from_channel_stats  # noqa: E402

# (channels, latent side) of the GroupNorm inputs in SD 1.5's UNet (up-block resnets see concatenations)
SHAPES = [(320, 64), (960, 64), (640, 32), (1920, 32), (1280, 16), (2560, 16), (1280, 8)]
GROUPS, EPS = 32, 1e-5


def sum_sumsq_group_norm(x, groups, weight, bias, eps):
    n, c = x.shape[:2]
    xf = x.float()
    count = xf[0, 0].numel() * (c // groups)
    s1 = xf.sum((2, 3)).view(n, groups, -1).sum(-1, keepdim=True)  # (n, groups, 1)
    s2 = xf.square().sum((2, 3)).view(n, groups, -1).sum(-1, keepdim=True)
    mean = s1 / count
    scale = torch.rsqrt(s2 / count - mean.square() + eps) * weight.float().view(groups, -1)  # (n, groups, c/g)
    shift = bias.float().view(groups, -1) - mean * scale
    return xf * scale.reshape(n, c, 1, 1) + shift.reshape(n, c, 1, 1)


FORMS = {
    "native": lambda x, w, b: F.group_norm(x, GROUPS, w, b, EPS),
    "channel-stats": lambda x, w, b: group_norm_from_channel_stats(x, GROUPS, w, b, EPS),
    "sum-sumsq": lambda x, w, b: sum_sumsq_group_norm(x, GROUPS, w, b, EPS),
}


def graphed(fn, *args, calls: int = 10):
    """A CUDA graph of `calls` calls of `fn(*args)` (warmed up on a side stream first); returns its replay."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            fn(*args)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(calls):
            fn(*args)
    return graph.replay


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=32, help="frames per call (2 x 16: both CFG halves)")
    ap.add_argument("--iters", type=int, default=50)
    ap.add_argument("--output-code", action="store_true", help="log inductor's generated code (to stderr)")
    ap.add_argument("--json", default=None)
    add_turns_arguments(ap)
    run_in_turns(run, ap.parse_args())


def run(args: argparse.Namespace, turns: GpuTurns) -> None:
    # one code object per pattern serves every form and shape: 3 x 7 graphs, over dynamo's default limit of 8
    # (beyond it run 94 timed eager calls)
    torch._dynamo.config.recompile_limit = 64
    if args.output_code:
        torch._logging.set_logs(output_code=True)
    bf16, cl, rows, cases = torch.bfloat16, torch.channels_last, [], []
    compiled = {}
    for form, norm in FORMS.items():
        compiled[form, "silu"] = torch.compile(
            lambda x, w, b, norm=norm: F.silu(norm(x, w, b)).to(bf16).contiguous(memory_format=cl), dynamic=False)
        compiled[form, "add"] = torch.compile(
            lambda x, r, w, b, norm=norm: (lambda s: (s, norm(s, w, b).to(bf16).contiguous(memory_format=cl)))(x + r),
            dynamic=False)
    for channels, side in SHAPES:
        torch.manual_seed(0)
        shape = (args.frames, channels, side, side)
        # activations with per-channel offsets, as a UNet's are
        x = (torch.randn(shape, device="cuda") * 2 + torch.randn(1, channels, 1, 1, device="cuda") * 3)
        x = x.to(bf16).contiguous(memory_format=cl)
        r = torch.randn(shape, device="cuda", dtype=bf16).contiguous(memory_format=cl)
        w = torch.randn(channels, device="cuda") * 0.2 + 1
        b = torch.randn(channels, device="cuda") * 0.2
        exact = F.silu(F.group_norm(x.double(), GROUPS, w.double(), b.double(), EPS))
        row = dict(channels=channels, side=side, mbytes=x.numel() * 2 / 1e6)
        with torch.no_grad(), torch.autocast("cuda", dtype=bf16):
            for form in FORMS:
                out = compiled[form, "silu"](x, w, b)
                row[f"{form}_max_abs_diff"] = float((out.double() - exact).abs().max())
                compiled[form, "add"](x, r, w, b)
        cases.append((row, x, r, w, b))
    with turns(), torch.no_grad(), torch.autocast("cuda", dtype=bf16):
        for row, x, r, w, b in cases:
            for form in FORMS:
                for pattern, inputs, moved in (("silu", (x, w, b), 2), ("add", (x, r, w, b), 4)):
                    fn = compiled[form, pattern]
                    row[f"{pattern}_{form}_ms"] = time_forward(fn, *inputs, iters=args.iters)
                    ms = time_calls(graphed(fn, *inputs), iters=max(1, args.iters // 10)) / 10
                    row[f"{pattern}_{form}_graph_ms"] = ms
                    row[f"{pattern}_{form}_graph_tb_s"] = moved * row["mbytes"] / ms / 1e3
            row["gpu"] = torch.cuda.get_device_name()
            emit(row, rows)
    write_rows(rows, args.json)


if __name__ == "__main__":
    main()
