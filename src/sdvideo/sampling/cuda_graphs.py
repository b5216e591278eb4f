"""Denoising steps replayed from CUDA graphs: one launch per UNet call instead of thousands.

A 16-frame SD-size UNet call launches about 2,000 kernels; Python, dynamo's guards and the launches
take long enough that the GPU waits between some of them, and the scheduler's step after each call
synchronises the CPU with the GPU, so every call starts from an empty queue. A CUDA graph records one
call's kernels once and replays them with a single launch.

Each input signature (shapes, dtypes and flags) gets its own graph, captured after a warm-up on the
same inputs (which also compiles a compiled model's regions first). A replay reads its inputs from
the tensors captured (`static`), so each call copies its inputs there first, and hands back a copy
of the output, which the next replay overwrites. The graphs share one memory pool: they never run at
the same time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch


@dataclass
class _Captured:
    graph: Any  # torch.cuda.CUDAGraph
    static: dict[str, torch.Tensor]  # the inputs the graph reads
    output: torch.Tensor  # the output the graph writes


class GraphedUNet:
    """Calls `unet(sample, timestep, encoder_hidden_states, **tensors, **flags).sample` through CUDA graphs.

    `tensors` are optional tensor inputs (fps, conditioning; None is part of the signature), `flags`
    plain values (enable_time). Works for any module with that call signature on one CUDA device.
    new_graph / capture: how to record (torch's CUDA graphs; tests substitute a recorder on the CPU).
    """

    def __init__(self, unet: Callable, warmup: int = 2, new_graph: Callable | None = None,
                 capture: Callable | None = None) -> None:
        self.unet = unet
        self.warmup = warmup
        self.new_graph = new_graph or torch.cuda.CUDAGraph
        self.capture = capture or self._cuda_capture
        self.pool = None
        self.graphs: dict[tuple, _Captured] = {}

    def __call__(self, sample: torch.Tensor, timestep: torch.Tensor | float | int, encoder_hidden_states: torch.Tensor,
                 **inputs: Any) -> torch.Tensor:
        tensors = dict(sample=sample, timestep=torch.as_tensor(timestep, device=sample.device),
                       encoder_hidden_states=encoder_hidden_states)
        flags = {}
        for name, value in inputs.items():
            if isinstance(value, torch.Tensor):
                tensors[name] = value
            else:
                flags[name] = value  # None, bool, float: baked into the graph, so part of its key
        key = (tuple((n, tuple(t.shape), t.dtype, t.device) for n, t in tensors.items()),
               tuple(sorted((n, repr(v)) for n, v in flags.items())))
        captured = self.graphs.get(key)
        if captured is None:
            captured = self.graphs[key] = self._record(tensors, flags)
        else:
            for name, value in tensors.items():
                captured.static[name].copy_(value)
        captured.graph.replay()
        return captured.output.clone()

    def _record(self, tensors: dict[str, torch.Tensor], flags: dict[str, Any]) -> _Captured:
        static = {name: value.clone() for name, value in tensors.items()}
        run = lambda: self.unet(**static, **flags).sample  # noqa: E731
        graph = self.new_graph()
        output = self.capture(graph, run)
        return _Captured(graph, static, output)

    def _cuda_capture(self, graph: Any, run: Callable[[], torch.Tensor]) -> torch.Tensor:
        # Warm up on a side stream (as torch.cuda.graphs' docs ask): compiles, autotunes, fills caches.
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(self.warmup):
                run()
        torch.cuda.current_stream().wait_stream(stream)
        if self.pool is None:
            self.pool = torch.cuda.graph_pool_handle()
        with torch.cuda.graph(graph, pool=self.pool):
            output = run()
        return output
