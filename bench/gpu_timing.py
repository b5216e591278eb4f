"""CUDA-event timing of a forward + backward, shared by the layer micro-benchmarks."""

from __future__ import annotations

from typing import Callable

import torch


def time_forward_backward(fn: Callable[..., torch.Tensor], *args, iters: int = 20, warmup: int = 3) -> float:
    """Milliseconds per `fn(*args)` forward plus the backward of a scalar loss on its output, after
    `warmup` untimed calls (cuDNN autotuning, compilation)."""
    for _ in range(warmup):
        fn(*args).float().square().mean().backward()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(iters):
        fn(*args).float().square().mean().backward()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / iters


@torch.no_grad()
def time_forward(fn: Callable[..., torch.Tensor], *args, iters: int = 20, warmup: int = 3) -> float:
    """Milliseconds per `fn(*args)` without autograd (inference), after `warmup` untimed calls."""
    for _ in range(warmup):
        fn(*args)
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(iters):
        fn(*args)
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / iters
