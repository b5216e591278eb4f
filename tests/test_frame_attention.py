"""Temporal attention over few frames, compiled, runs as plain tensor ops and computes what SDPA computes."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from compiled_graphs import graph_keeper
from sdvideo.models.temporal_attention import SHORT_ATTENTION_MAX_FRAMES, frame_attention


def _compiled_with_graphs(fn):
    backend, graphs = graph_keeper()
    return torch.compile(fn, backend=backend, dynamic=False), graphs


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


def test_compiled_model_takes_rotary_tables_per_call_instead_of_computing_them_per_element(video_unet) -> None:
    # Computed inside a compiled region, the tiny (frames, head_dim / 2) tables were fused into the kernels
    # applying them: pow, cos and sin evaluated for every element (4 % of a denoising step on an H100).
    import copy

    video = video_unet
    keep_graph, graphs = graph_keeper()
    compiled = copy.deepcopy(video).compile_regions(channels_last=False, backend=keep_graph)
    x, t, text = torch.randn(1, 4, 3, 16, 16), torch.tensor([10]), torch.randn(1, 77, 32)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x, t, text).sample, video(x, t, text).sample, rtol=1e-5, atol=1e-5)
    ops = {getattr(node.target, "__name__", str(node.target)) for gm in graphs for node in gm.graph.nodes}
    assert "softmax" in ops  # temporal attention was traced (as tensor ops: 3 frames)...
    assert not {"cos", "sin", "pow"} & ops  # ...with its rotary tables as inputs
    assert set(video.frame_context.rotary) == {(32, 10000.0), (64, 10000.0)}  # a pair per head size, made by the call
