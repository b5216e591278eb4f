"""Spatial self-attention's q, k, v from one matmul (models/packed_qkv_attention.py): in compiled inference the
traced graph stacks the three weights and projects once, with diffusers' numbers; cross-attention, eager calls,
training and other devices run diffusers' processor; installed on every VideoUNet self-attention."""

from __future__ import annotations

import pytest
import torch
from diffusers.models.attention import BasicTransformerBlock

from sdvideo.models import packed_qkv_attention
from sdvideo.models.packed_qkv_attention import PackedQKVAttnProcessor, install_packed_qkv

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def on_cpu(monkeypatch):
    monkeypatch.setattr(packed_qkv_attention, "DEVICES", {"cuda", "cpu"})


def _block() -> BasicTransformerBlock:
    torch.manual_seed(0)
    block = BasicTransformerBlock(32, 2, 16, cross_attention_dim=24).eval()
    assert install_packed_qkv(block) == 1  # attn1 only: attn2 attends to the text
    return block


def _traced(block, *args, **kwargs):
    """block(*args, **kwargs) under torch.compile with a backend that keeps the traced FX graphs."""
    graphs = []

    def backend(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    torch._dynamo.reset()
    return torch.compile(block, backend=backend, fullgraph=True)(*args, **kwargs), graphs


def _stacked_weights(graphs) -> int:
    return sum(1 for g in graphs for n in g.graph.nodes if n.op == "call_function" and n.target is torch.cat)


def test_compiled_inference_projects_once_with_diffusers_numbers(on_cpu, monkeypatch) -> None:
    block = _block()
    x, text = torch.randn(2, 9, 32), torch.randn(2, 4, 24)
    with torch.no_grad():
        packed, graphs = _traced(block, x, encoder_hidden_states=text)
        assert _stacked_weights(graphs) == 1
        monkeypatch.setattr(packed_qkv_attention, "ENABLED", False)
        plain, graphs = _traced(block, x, encoder_hidden_states=text)
        assert _stacked_weights(graphs) == 0
        eager = block(x, encoder_hidden_states=text)
    torch.testing.assert_close(packed, plain, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(packed, eager, rtol=1e-5, atol=1e-5)


def test_training_eager_and_other_devices_keep_diffusers_processor(on_cpu, monkeypatch) -> None:
    block = _block()
    x, text = torch.randn(2, 9, 32), torch.randn(2, 4, 24)
    _, graphs = _traced(block, x, encoder_hidden_states=text)  # autograd on
    assert _stacked_weights(graphs) == 0
    with torch.no_grad():
        assert not packed_qkv_attention.applies(block.attn1, x, None, None)  # eager
        monkeypatch.setattr(packed_qkv_attention, "DEVICES", {"cuda"})
        _, graphs = _traced(block, x, encoder_hidden_states=text)  # a CPU tensor
    assert _stacked_weights(graphs) == 0


def test_installed_on_every_video_unet_self_attention(base) -> None:
    from sdvideo.models.video_unet import inflate

    unet = inflate(base.unet)
    blocks = [m for m in unet.modules() if isinstance(m, BasicTransformerBlock)]
    assert blocks and all(type(b.attn1.processor) is PackedQKVAttnProcessor for b in blocks)
    assert all(type(b.attn2.processor) is not PackedQKVAttnProcessor for b in blocks)
