"""Transformer Linears with the bias after the matmul (fast/bias_after_matmul.py): in compiled inference the
traced graph holds a matmul without bias and a separate add (so inductor can fuse the add), with the same
numbers as nn.Linear up to rounding; eager calls, training and other devices keep nn.Linear's addmm;
installed by enable_fast_inference in every transformer block of a VideoUNet with parameters and state dict
unchanged."""

from __future__ import annotations

import pytest
import torch
from diffusers.models.attention import BasicTransformerBlock
from torch import nn

from compiled_graphs import traced
from sdvideo.fast import bias_after_matmul
from sdvideo.fast.bias_after_matmul import BiasAfterMatmulLinear, install_bias_after_matmul
from sdvideo.models.temporal_attention import TemporalTransformer

pytestmark = pytest.mark.usefixtures("one_thread")
CPU_TOO = frozenset({"cuda", "cpu"})  # the split on the CPU too (CUDA only by default)


def _linear() -> BiasAfterMatmulLinear:
    torch.manual_seed(0)
    layer = nn.Linear(16, 8)
    layer.__class__ = BiasAfterMatmulLinear
    layer.devices = CPU_TOO
    return layer


def _linear_calls(graphs) -> list[bool]:
    """For each F.linear call in the traced graphs, whether it takes a bias."""
    calls = [n for g in graphs for n in g.graph.nodes if n.op == "call_function" and n.target is torch._C._nn.linear]
    return [(n.args[2] if len(n.args) > 2 else n.kwargs.get("bias")) is not None for n in calls]


def test_compiled_inference_traces_matmul_then_add_with_linears_numbers() -> None:
    layer, x = _linear(), torch.randn(4, 5, 16)
    with torch.no_grad():
        out, graphs = traced(layer, x)
        expected = nn.functional.linear(x, layer.weight, layer.bias)
    assert _linear_calls(graphs) == [False]  # the bias left the matmul
    torch.testing.assert_close(out, expected, rtol=1e-6, atol=1e-6)


def test_bfloat16_rounds_twice_and_no_more() -> None:
    layer, x = _linear().bfloat16(), torch.randn(64, 16).bfloat16()
    with torch.no_grad():
        out, _ = traced(layer, x)
        product = nn.functional.linear(x.float(), layer.weight.float())
        exact = product + layer.bias.float()
    assert out.dtype == torch.bfloat16
    # half a bf16 spacing (8 significant bits) of the rounded matmul, then of the sum
    bound = 2**-8 * (product.abs() + exact.abs()) * (1 + 2**-6)
    assert bool(((out.float() - exact).abs() <= bound).all())
    assert float((out.float() - exact).abs().max()) > 0  # it did round


def test_eager_training_and_other_devices_keep_addmm() -> None:
    layer, x = _linear(), torch.randn(3, 16)
    with torch.no_grad():
        assert not bias_after_matmul.supported(x, layer)  # eager: one addmm beats matmul + add
    _, graphs = traced(layer, x)  # autograd on
    assert _linear_calls(graphs) == [True]
    layer.devices = frozenset({"cuda"})  # the default
    with torch.no_grad():
        _, graphs = traced(layer, x)  # a CPU tensor
    assert _linear_calls(graphs) == [True]


def test_installed_in_transformer_blocks_only_with_state_dict_unchanged() -> None:
    torch.manual_seed(0)
    model = nn.ModuleDict(dict(block=BasicTransformerBlock(32, 2, 16, cross_attention_dim=24),
                               temporal=TemporalTransformer(32, head_dim=16), other=nn.Linear(4, 4)))
    keys = model.state_dict().keys()
    # spatial: attn1 and attn2 output projections, GEGLU's projection, the feed-forward's output; temporal:
    # the output projection and both feed-forward Linears (to_qkv has no bias)
    assert install_bias_after_matmul(model, CPU_TOO) == 4 + 3
    assert type(model["other"]) is nn.Linear and model.state_dict().keys() == keys
    x, text = torch.randn(2, 9, 32), torch.randn(2, 4, 24)
    with torch.no_grad():
        eager = model["block"](x, encoder_hidden_states=text)
        compiled, graphs = traced(lambda x, text: model["block"](x, encoder_hidden_states=text), x, text)
    assert _linear_calls(graphs) == [False] * 10  # q, k, v twice (no bias) and the four split ones
    torch.testing.assert_close(compiled, eager, rtol=1e-5, atol=1e-5)


def test_installed_by_enable_fast_inference_only(base) -> None:
    from sdvideo.models.video_unet import inflate

    unet = inflate(base.unet)
    assert not any(type(m) is BiasAfterMatmulLinear for m in unet.modules())
    unet.enable_fast_inference()
    switched = [m for m in unet.modules() if type(m) is BiasAfterMatmulLinear]
    assert switched and all(m.bias is not None and m.devices == {"cuda"} for m in switched)
