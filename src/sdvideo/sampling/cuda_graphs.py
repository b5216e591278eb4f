"""Denoising steps replayed from CUDA graphs: one launch per UNet call instead of thousands.

A 16-frame SD-size UNet call launches about 2,000 kernels. Python, dynamo's guards and the launches
take long enough that the GPU waits between some of them, and the scheduler's step after each call
synchronises the CPU with the GPU, so every call starts from an empty queue; the smaller the frames,
the more of a step that is (about a third of a compiled 256 px step, 2 % of a 512 px one).
A CUDA graph records one call's kernels once and replays them with a single launch.

Each input signature (shapes, dtypes, flags) gets its own graph. Its first call runs plainly: it is
the warm-up a capture needs (compiling a compiled model's regions, choosing cuDNN's algorithms) and
its result is used as is. The second call records the graph (CPU time only) and replays it; a replay
reads its inputs from the tensors recorded (`static`), so each call copies its inputs there, and hands
back a copy of the output, which the next replay overwrites. All graphs share one memory pool: they
never run at the same time. A call that cannot be recorded (an operation that synchronises with the
CPU, say) warns once and runs plainly from then on: graphs change speed, never results.
"""

from __future__ import annotations

import warnings
from collections import Counter
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

    `tensors` are optional tensor inputs (fps, conditioning), `flags` anything else (enable_time, or
    None for an absent input): baked into a graph, so part of its signature. Any module with that
    call signature, on one CUDA device. new_graph / capture: how to record (torch's CUDA graphs; the
    tests substitute a recorder on the CPU).
    """

    def __init__(self, unet: Callable, new_graph: Callable | None = None, capture: Callable | None = None) -> None:
        self.unet = unet
        self.new_graph = new_graph or torch.cuda.CUDAGraph
        self.capture = capture or self._cuda_capture
        self.pool = None
        self.calls: Counter = Counter()  # per signature
        self.graphs: dict[tuple, _Captured] = {}  # recorded on a signature's second call (if it could be)

    def __call__(self, sample: torch.Tensor, timestep: torch.Tensor | float | int, encoder_hidden_states: torch.Tensor,
                 **inputs: Any) -> torch.Tensor:
        tensors = dict(sample=sample, timestep=torch.as_tensor(timestep, device=sample.device),
                       encoder_hidden_states=encoder_hidden_states)
        flags = {}
        for name, value in inputs.items():
            (tensors if isinstance(value, torch.Tensor) else flags)[name] = value
        key = (tuple((n, tuple(t.shape), t.dtype, t.device) for n, t in tensors.items()),
               tuple(sorted((n, repr(v)) for n, v in flags.items())))
        self.calls[key] += 1
        if self.calls[key] == 2 and (recorded := self._record(tensors, flags)) is not None:
            self.graphs[key] = recorded
        captured = self.graphs.get(key)
        if captured is None:  # the warm-up, or a call that could not be recorded
            return self.unet(**tensors, **flags).sample
        for name, value in tensors.items():
            captured.static[name].copy_(value)
        captured.graph.replay()
        return captured.output.clone()

    def _record(self, tensors: dict[str, torch.Tensor], flags: dict[str, Any]) -> _Captured | None:
        static = {name: value.clone() for name, value in tensors.items()}
        graph = self.new_graph()
        try:
            output = self.capture(graph, lambda: self.unet(**static, **flags).sample)
        except RuntimeError as err:
            reason = str(err).splitlines()[0] if str(err) else type(err).__name__
            warnings.warn(f"CUDA graph capture failed ({reason}); running these denoising steps without graphs",
                          stacklevel=3)
            return None
        return _Captured(graph, static, output)

    def _cuda_capture(self, graph: Any, run: Callable[[], torch.Tensor]) -> torch.Tensor:
        if self.pool is None:
            self.pool = torch.cuda.graph_pool_handle()
        with torch.cuda.graph(graph, pool=self.pool):
            output = run()
        return output
