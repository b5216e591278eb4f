"""CUDA-event timing, kernel profiles and result rows, shared by the GPU benchmarks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

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


def kernel_profile(step: Callable[[], Any], stacks: bool = True, rows: int = 30, calls: int = 2) -> str:
    """Kernels by GPU time over `calls` calls of `step`; with `stacks`, then the operators that launched
    them, grouped by their Python call sites (what a copy kernel belongs to)."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CUDA] + ([ProfilerActivity.CPU] if stacks else [])
    # Python call sites need the verbose experimental config too: `with_stack` alone recorded none (run 19).
    verbose = {"experimental_config": torch._C._profiler._ExperimentalConfig(verbose=True)} if stacks else {}
    with profile(activities=activities, record_shapes=stacks, with_stack=stacks, **verbose) as prof:
        for _ in range(calls):
            step()
        torch.cuda.synchronize()
    table = prof.key_averages().table(sort_by="cuda_time_total", row_limit=rows, max_name_column_width=90)
    if stacks:
        table += "\n\n" + prof.key_averages(group_by_stack_n=8).table(
            sort_by="self_cuda_time_total", row_limit=25, max_name_column_width=60, max_src_column_width=200)
    return table


def emit(row: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    """Print one result row as a JSON line (as soon as it exists) and keep it."""
    print(json.dumps(row), flush=True)
    rows.append(row)


def write_rows(rows: list[dict[str, Any]], path: str | None) -> None:
    """All rows as one JSON list at `path`, when given."""
    if path:
        Path(path).write_text(json.dumps(rows, indent=2))
