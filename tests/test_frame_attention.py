"""Temporal attention over few frames, compiled, runs as plain tensor ops and computes what SDPA computes."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from sdvideo.models.temporal_attention import SHORT_ATTENTION_MAX_FRAMES, frame_attention


def _compiled_with_graphs(fn):
    graphs = []

    def keep_graph(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    return torch.compile(fn, backend=keep_graph, dynamic=False), graphs


@pytest.mark.parametrize("frames", [16, SHORT_ATTENTION_MAX_FRAMES + 8])
def test_compiled_frame_attention_matches_sdpa_and_uses_it_only_for_long_clips(frames) -> None:
    torch.manual_seed(0)
    q, k, v = (torch.randn(6, 2, frames, 8, requires_grad=True) for _ in range(3))
    compiled, graphs = _compiled_with_graphs(frame_attention)
    out = compiled(q, k, v)
    expected = F.scaled_dot_product_attention(q, k, v)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)
    g = torch.randn_like(out)
    for got, want in zip(torch.autograd.grad(out, (q, k, v), g), torch.autograd.grad(expected, (q, k, v), g)):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    ops = {str(node.target) for gm in graphs for node in gm.graph.nodes}
    uses_sdpa = any("scaled_dot_product" in op for op in ops)
    assert uses_sdpa == (frames > SHORT_ATTENTION_MAX_FRAMES)


def test_eager_frame_attention_is_sdpa() -> None:
    q, k, v = (torch.randn(3, 2, 5, 8) for _ in range(3))
    assert torch.equal(frame_attention(q, k, v), F.scaled_dot_product_attention(q, k, v))
