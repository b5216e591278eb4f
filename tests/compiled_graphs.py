"""torch.compile with a backend that keeps dynamo's traced FX graphs and runs them as traced, for tests that
check what a compiled call contains."""

from __future__ import annotations

from typing import Any, Callable

import torch


def graph_keeper() -> tuple[Callable, list[torch.fx.GraphModule]]:
    """A compile backend and the list it appends each traced graph to."""
    graphs: list[torch.fx.GraphModule] = []

    def keep_graph(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    return keep_graph, graphs


def traced(fn: Callable, *args) -> tuple[Any, list[torch.fx.GraphModule]]:
    """`fn(*args)` compiled as one graph from a clean dynamo state; returns (output, graphs)."""
    backend, graphs = graph_keeper()
    torch._dynamo.reset()
    return torch.compile(fn, backend=backend, fullgraph=True)(*args), graphs
