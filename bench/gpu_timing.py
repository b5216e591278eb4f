"""CUDA-event timing, kernel profiles and result rows, shared by the GPU benchmarks."""

from __future__ import annotations

import contextlib
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


def time_calls(fn: Callable[[], Any], iters: int = 20, warmup: int = 3) -> float:
    """Milliseconds per `fn()` (autograd as the caller has it), after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(iters):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / iters


@torch.no_grad()
def time_forward(fn: Callable[..., torch.Tensor], *args, iters: int = 20, warmup: int = 3) -> float:
    """Milliseconds per `fn(*args)` without autograd (inference), after `warmup` untimed calls."""
    return time_calls(lambda: fn(*args), iters=iters, warmup=warmup)


def kernel_profile(step: Callable[[], Any], stacks: bool = True, rows: int = 30, calls: int = 2,
                   owners: str | None = None) -> str:
    """Kernels by GPU time over `calls` calls of `step`; with `stacks`, then the operators that launched
    them, grouped by their Python call sites (what a copy kernel belongs to); with `owners` (a regular
    expression of kernel names, needs `stacks`), the operators that launched those kernels, with their
    callers and input shapes (which convolution converts its layouts, which op copies)."""
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
        if owners:
            table += f"\n\nOperators launching kernels matching {owners!r}, by caller chain and input shapes:\n"
            table += kernel_owners(prof.events(), owners)
    return table


def kernel_owners(events, pattern: str, rows: int = 30) -> str:
    """Group the CPU operators whose own kernels match `pattern` by (operator < parent < grandparent ...,
    input shapes, input strides where recorded): calls and kernel milliseconds, largest first."""
    import re

    match = re.compile(pattern)
    groups: dict[tuple[str, ...], list[float]] = {}
    for evt in events:
        kernels = [k for k in getattr(evt, "kernels", []) if match.search(k.name)]
        if not kernels:
            continue
        chain, parent = [evt.name], evt.cpu_parent
        while parent is not None and len(chain) < 4:
            chain.append(parent.name)
            parent = parent.cpu_parent
        strides = getattr(evt, "structured_input_strides", None) or getattr(evt, "input_strides", None) or ""
        key = (" < ".join(chain), str(evt.input_shapes)[:200], str(strides)[:200], kernels[0].name[:60])
        group = groups.setdefault(key, [0, 0.0])
        group[0] += 1
        group[1] += sum(k.duration for k in kernels)
    ranked = sorted(groups.items(), key=lambda kv: -kv[1][1])[:rows]
    return "\n".join(f"{us / 1e3:9.2f} ms {int(n):5d}x  {k[0]}\n      shapes={k[1]}\n      strides={k[2]}\n      kernel={k[3]}"
                     for k, (n, us) in ranked)


@contextlib.contextmanager
def counting_tangent_copies(counts: dict[str, float]):
    """Count the output gradients AOTAutograd copies into the layout a compiled region's backward was
    traced with (a gradient that arrives in another layout than the region's output had): how many,
    and their GiB, added to `counts` ("copies", "gib")."""
    import torch._dynamo  # noqa: F401  (imports the runtime wrappers in their order)
    from torch._functorch._aot_autograd import runtime_wrappers

    coerce = runtime_wrappers.coerce_to_expected_memory_format

    def counted(x, memory_format):
        out = coerce(x, memory_format)
        if out is not x:
            counts["copies"] = counts.get("copies", 0) + 1
            counts["gib"] = counts.get("gib", 0.0) + out.numel() * out.element_size() / 2**30
        return out

    runtime_wrappers.coerce_to_expected_memory_format = counted
    try:
        yield counts
    finally:
        runtime_wrappers.coerce_to_expected_memory_format = coerce


def emit(row: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    """Print one result row as a JSON line (as soon as it exists) and keep it."""
    print(json.dumps(row), flush=True)
    rows.append(row)


def write_rows(rows: list[dict[str, Any]], path: str | None) -> None:
    """All rows as one JSON list at `path`, when given."""
    if path:
        Path(path).write_text(json.dumps(rows, indent=2))
