"""Where a UNet call's time goes, region by region, and what the temporal layers cost.

Each compiled region of the SD 1.5-size video UNet (resnets with their temporal convolutions,
spatio-temporal transformers, the blocks' resamplers) is timed alone, at the shapes it sees in one
guided denoising call (2 x 16 frames, 64 x 64 latents, bf16, channels-last, layer regions as
`sample --compile` runs them), with the temporal layers on and off (off: the SD 1.5 image model's
own layers). Rows also give each region's forward FLOPs and rate, so the slow regions stand out;
the totals say how much of a call is inside the regions and how much the temporal layers add.

    python bench/bench_regions.py --json out.json
    python bench/bench_regions.py --profile "down_blocks.0.attentions.0$" --profile-out table.txt
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_unet import build_sdvideo, set_fusions  # noqa: E402
from gpu_timing import emit, kernel_profile, time_forward, write_rows  # noqa: E402
from gpu_turns import GpuTurns, add_turns_arguments, run_in_turns  # noqa: E402


def _flops(fn) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16), FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=2, help="videos per call (2: both CFG halves)")
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--latent", type=int, default=64)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--json", default=None)
    ap.add_argument("--profile", default=None, help="regex: also profile the regions whose names match it "
                    "(temporal layers on), their kernels by GPU time to --profile-out")
    ap.add_argument("--profile-out", default="region-profile.txt")
    ap.add_argument("--fusions", default="all", help="sdvideo's inference fusions, as bench_unet.py's --fusions")
    ap.add_argument("--output-code", action="store_true", help="log inductor's generated code (to stderr)")
    add_turns_arguments(ap)
    args = ap.parse_args()
    run_in_turns(run, args)


def run(args: argparse.Namespace, turns: GpuTurns) -> None:
    torch.backends.cudnn.benchmark = True
    if args.output_code:
        torch._logging.set_logs(output_code=True)
    with torch.device("cuda"):
        model, call = build_sdvideo({})
    set_fusions(args.fusions)
    model.eval().to(torch.bfloat16)
    names = {id(m): n for n, m in model.named_modules()}
    regions = model._compile_targets("layers")
    inputs: dict[int, tuple] = {}

    def capture(module, a, kw):
        inputs.setdefault(id(module), (a, kw))

    hooks = [m.register_forward_pre_hook(capture, with_kwargs=True) for m in regions]
    x = torch.randn(args.batch, 4, args.frames, args.latent, args.latent, device="cuda")
    t = torch.full((args.batch,), 500, device="cuda")
    text = torch.randn(args.batch, 77, 768, device="cuda", dtype=torch.bfloat16)
    # FLOPs on the eager model (same math), then the regions compiled as `sample --compile` compiles them.
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
        call(model, x, t, text)  # captures every region's inputs (NCHW here; recaptured channels-last below)
    flops = {id(m): _flops(lambda m=m, a=inputs[id(m)][0], kw=inputs[id(m)][1]: m(*a, **kw)) for m in regions}
    for h in hooks:
        h.remove()
    model.compile_regions(channels_last=True)
    inputs.clear()
    hooks = [m.register_forward_pre_hook(capture, with_kwargs=True) for m in regions]
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
        call(model, x, t, text)  # compiles the regions; captures their channels-last inputs
        for h in hooks:
            h.remove()
        call(model, x, t, text, enable_time=False)  # compiles them again without the temporal layers
    ctx = model.frame_context
    rows: list[dict] = []
    totals: dict[str, float] = {}
    with turns(), torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
        for enable_time in (True, False):
            on_off = "on" if enable_time else "off"
            totals[f"unet_ms_time_{on_off}"] = time_forward(
                lambda: call(model, x, t, text, enable_time=enable_time), iters=args.iters)
            ctx.enable_time = enable_time  # the context stays set after a call; the regions read it
            for m in regions:
                a, kw = inputs[id(m)]
                row = next((r for r in rows if r["region"] == names[id(m)]), None)
                if row is None:
                    row = dict(region=names[id(m)], kind=type(m).__name__, shape=list(a[0].shape),
                               gflop_time_on=flops[id(m)] / 1e9)
                    rows.append(row)
                row[f"ms_time_{on_off}"] = time_forward(lambda m=m, a=a, kw=kw: m(*a, **kw), iters=args.iters)
    if args.profile:
        with turns():
            _profile([m for m in regions if re.search(args.profile, names[id(m)])], names, inputs, ctx, args.profile_out)
    for row in rows:
        row["tflops_time_on"] = row["gflop_time_on"] / row["ms_time_on"]
        emit(row, [])
    summary = dict(totals, regions_ms_time_on=sum(r["ms_time_on"] for r in rows),
                   regions_ms_time_off=sum(r["ms_time_off"] for r in rows), gpu=torch.cuda.get_device_name())
    for r in rows:  # per kind of region and latent size (64: the 64 x 64 level), time on and off
        key = f"{r['kind']} {r['shape'][-1]} ms on/off"
        on, off = summary.get(key, (0.0, 0.0))
        summary[key] = (round(on + r["ms_time_on"], 3), round(off + r["ms_time_off"], 3))
    emit(summary, rows)
    write_rows(rows, args.json)


def _profile(regions, names, inputs, ctx, out_path: str) -> None:
    """Each region's kernels over 10 calls (temporal layers on), by GPU time, appended to out_path."""
    ctx.enable_time = True
    with open(out_path, "a") as out, torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
        for m in regions:
            a, kw = inputs[id(m)]
            for _ in range(3):  # warm-up
                m(*a, **kw)
            table = kernel_profile(lambda m=m, a=a, kw=kw: m(*a, **kw), stacks=False, rows=40, calls=10)
            out.write(f"== {names[id(m)]} input {list(a[0].shape)}, 10 calls\n{table}\n")


if __name__ == "__main__":
    main()
