"""Optimizer step alone on the SD 1.5-size video UNet's trainable (temporal) parameters, one GPU.

For each optimizer: GPU time of a step (CUDA events), the CPU time its Python spends launching it
(what a step hides behind the GPU's backward only while the GPU is behind), and the bytes of its
states. Random gradients; the states after `--warmup` steps (torchao compiles its first steps).

    python bench/bench_optimizer.py --json results.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from bench_unet import build_sdvideo, make_bench_optimizer

GiB = 1024**3


def state_bytes(opt: torch.optim.Optimizer) -> int:
    """Bytes of every tensor in the optimizer's state (torchao's 8-bit states: codes plus scales)."""
    total = 0
    for state in opt.state.values():
        for value in state.values():
            if isinstance(value, torch.Tensor) and value.device.type == "cuda":
                inner = [getattr(value, name) for name in value.__tensor_flatten__()[0]] \
                    if hasattr(value, "__tensor_flatten__") else [value]
                total += sum(t.numel() * t.element_size() for t in inner)
    return total


def time_optimizer(model: torch.nn.Module, name: str, steps: int, warmup: int) -> dict[str, float]:
    params = [p for p in model.parameters() if p.requires_grad]
    for p in params:
        p.grad = torch.randn_like(p) * 1e-3
    opt = make_bench_optimizer(model, name)
    for _ in range(warmup):
        opt.step()
    torch.cuda.synchronize()
    gpu_ms, cpu_ms = [], []
    for _ in range(steps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda._sleep(50_000_000)  # keep the GPU busy so the launches run ahead of it (as after a backward)
        start.record()
        t0 = time.perf_counter()
        opt.step()
        cpu_ms.append((time.perf_counter() - t0) * 1e3)
        end.record()
        torch.cuda.synchronize()
        gpu_ms.append(start.elapsed_time(end))
    return dict(optimizer=name, tensors=len(params), params_M=sum(p.numel() for p in params) / 1e6,
                gpu_ms=statistics.median(gpu_ms), cpu_launch_ms=statistics.median(cpu_ms),
                state_gib=state_bytes(opt) / GiB)


def kernel_against_reference(model: torch.nn.Module, steps: int = 3) -> dict[str, float]:
    """sdvideo's 8-bit AdamW on the GPU: the Triton kernel against its tensor-op reference, same gradients."""
    from sdvideo.training import adamw8bit

    params = [p for p in model.parameters() if p.requires_grad]
    twins = [torch.nn.Parameter(p.detach().clone()) for p in params]
    kernel_opt, reference_opt = adamw8bit.AdamW8bit(params, lr=1e-4), adamw8bit.AdamW8bit(twins, lr=1e-4)
    used = sum(adamw8bit.uses_kernel(p, torch.empty_like(p)) for p in params)
    real = adamw8bit.uses_kernel
    for _ in range(steps):
        for p, q in zip(params, twins):
            p.grad = torch.randn_like(p) * 1e-3
            q.grad = p.grad.clone()
        kernel_opt.step()
        adamw8bit.uses_kernel = lambda p, grad: False
        try:
            reference_opt.step()
        finally:
            adamw8bit.uses_kernel = real
    diff = max(float((p - q).abs().max()) for p, q in zip(params, twins))  # the updates are ~1e-4 a step
    codes = [(kernel_opt.state[p]["exp_avg"] != reference_opt.state[q]["exp_avg"]).float().mean().item()
             for p, q in zip(params, twins) if kernel_opt.state[p]["exp_avg"].dtype == torch.uint8]
    return dict(check="adamw8bit kernel vs reference", tensors_on_kernel=used, tensors=len(params), steps=steps,
                max_param_diff=diff, max_code_mismatch=max(codes))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--optimizers", default="adamw,adamw8bit,adamw8bit-bnb,adamw8bit-torchao")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    with torch.device("cuda"):
        model, _ = build_sdvideo({})
    rows = [kernel_against_reference(model)]
    print(json.dumps(rows[-1]), flush=True)
    for name in args.optimizers.split(","):
        rows.append(time_optimizer(model, name, args.steps, args.warmup))
        print(json.dumps(rows[-1]), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(gpu=torch.cuda.get_device_name(), rows=rows), f, indent=1)


if __name__ == "__main__":
    main()
