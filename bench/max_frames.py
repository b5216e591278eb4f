"""The largest frame count that trains at batch 1 within a memory cap (24 GiB: a consumer card), measured.

For each resolution and checkpointing level, the search starts at `sdvideo train --dry-run`'s estimate
and then runs real training steps (SD 1.5 size, random weights, bf16 autocast, frozen weights in bf16,
8-bit AdamW as `sdvideo train` picks it) with the CUDA caching allocator capped at `--cap-gib`
(`torch.cuda.set_per_process_memory_fraction`), bracketing and bisecting on out-of-memory errors.

    python bench/max_frames.py --sizes 512,256 --checkpointing none,attention,full --out max_frames.jsonl

One JSON line per trial, then one summary line per (size, checkpointing), also printed.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_unet import build_sdvideo  # noqa: E402

from sdvideo.models.presets import preset  # noqa: E402
from sdvideo.training.memory_estimate import largest_fitting, largest_frame_count  # noqa: E402
from sdvideo.training.optim import make_optimizer  # noqa: E402

GiB = 1024**3


def trains(model, call, frames: int, latent: int, steps: int = 2) -> tuple[bool, float, float, float]:
    """Whether `steps` training steps of 1 x `frames` run within the cap:
    (fits, peak allocated GiB, peak reserved GiB, last step s)."""
    optimizer, _ = make_optimizer([p for p in model.parameters() if p.requires_grad], "adamw8bit", 1e-5, 0.0, "cuda")
    torch.cuda.reset_peak_memory_stats()
    fits, step_s = True, float("nan")
    try:
        x = torch.randn(1, 4, frames, latent, latent, device="cuda")
        t = torch.randint(0, 1000, (1,), device="cuda")
        text = torch.randn(1, 77, 768, device="cuda")
        for _ in range(steps):  # the first step also allocates the optimizer state
            torch.cuda.synchronize()
            start = time.perf_counter()
            with torch.autocast("cuda", dtype=torch.bfloat16):
                out = call(model, x, t, text)
            torch.nn.functional.mse_loss(out.float(), torch.randn_like(out, dtype=torch.float32)).backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            torch.cuda.synchronize()
            step_s = time.perf_counter() - start
    except torch.OutOfMemoryError:
        fits = False
    peak = torch.cuda.max_memory_allocated() / GiB
    reserved = torch.cuda.max_memory_reserved() / GiB  # what the cap limits: allocated + fragmentation
    x = out = None  # noqa: F841  (free the activations before the next trial)
    model.zero_grad(set_to_none=True)
    del optimizer
    gc.collect()
    torch.cuda.empty_cache()
    return fits, peak, reserved, step_s


def search(model, call, latent: int, start: int, max_trials: int, emit) -> int:
    """Largest frame count that trains, searched from `start` (the estimate) with real steps."""

    def trial(frames: int) -> bool:
        fits, peak, reserved, step_s = trains(model, call, frames, latent)
        emit(dict(frames=frames, fits=fits, peak_gib=round(peak, 2), reserved_gib=round(reserved, 2),
                  step_s=round(step_s, 3)))
        return fits

    return largest_fitting(trial, start=start, max_trials=max_trials)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="512,256", help="pixel sizes (latents are size / 8)")
    parser.add_argument("--checkpointing", default="none,attention,full")
    parser.add_argument("--cap-gib", type=float, default=24.0)
    parser.add_argument("--max-trials", type=int, default=8, help="training trials per search")
    parser.add_argument("--out", default=None, help="JSON lines file")
    args = parser.parse_args()

    total = torch.cuda.get_device_properties(0).total_memory
    torch.cuda.set_per_process_memory_fraction(min(1.0, args.cap_gib * GiB / total))
    out = open(args.out, "a") if args.out else None

    def emit(row: dict) -> None:
        line = json.dumps(row)
        print(line, flush=True)
        if out:
            out.write(line + "\n")
            out.flush()

    for checkpointing in args.checkpointing.split(","):
        model, call = build_sdvideo(dict(checkpointing=checkpointing))
        for size in map(int, args.sizes.split(",")):
            latent = size // 8
            estimate = largest_frame_count(args.cap_gib, unet_config=preset("sd15")["unet"], temporal={},
                                           latent_size=latent, optimizer="adamw8bit",
                                           gradient_checkpointing=checkpointing)

            def tagged(row: dict, size=size) -> None:
                emit(dict(size=size, checkpointing=checkpointing, **row))

            measured = search(model, call, latent, estimate, args.max_trials, tagged)
            emit(dict(size=size, checkpointing=checkpointing, cap_gib=args.cap_gib, estimated_frames=estimate,
                      measured_frames=measured, gpu=torch.cuda.get_device_name(),
                      alloc_conf=os.environ.get("PYTORCH_CUDA_ALLOC_CONF", ""), summary=True))
        del model
        gc.collect()
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
