"""The fused Triton temporal attention (rotary, scores, softmax, weighted sum, output layout in one
kernel each way) computes what the tensor-op path computes, forward and backward, eager and compiled.
On the CPU the kernels run through Triton's interpreter (tests/conftest.py)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from sdvideo.models import fused_frame_attention as ffa
from sdvideo.models.temporal_attention import TemporalTransformer, apply_rotary, rotary_cos_sin

pytestmark = pytest.mark.skipif(not ffa.HAVE_TRITON, reason="Triton is a test dependency (pip install -e .[test])")


CPU_TOO = frozenset({"cuda", "cpu"})  # layers take the fused path on the CPU too (interpreted kernels)


def _reference(qkv: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, heads: int) -> torch.Tensor:
    n, f, c3 = qkv.shape
    q, k, v = qkv.view(n, f, 3, heads, c3 // 3 // heads).permute(2, 0, 3, 1, 4)
    q, k = apply_rotary(q, cos.to(q.dtype), sin.to(q.dtype)), apply_rotary(k, cos.to(q.dtype), sin.to(q.dtype))
    return F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(n, f, c3 // 3)


@pytest.mark.parametrize("frames,heads,head_dim", [(16, 2, 32), (1, 1, 32), (5, 3, 64), (20, 1, 32), (32, 2, 32)])
def test_matches_the_tensor_op_path_forward_and_backward(frames, heads, head_dim) -> None:
    torch.manual_seed(frames)
    qkv = torch.randn(3, frames, 3 * heads * head_dim, requires_grad=True)
    cos, sin = rotary_cos_sin(frames, head_dim, 10000.0, "cpu")
    out = ffa.fused_frame_attention(qkv, cos, sin, heads)
    expected = _reference(qkv, cos, sin, heads)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    grad = torch.randn_like(out)
    (got,), (want,) = torch.autograd.grad(out, qkv, grad), torch.autograd.grad(expected, qkv, grad)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_frame_major_layout_matches_the_sequence_layout_forward_and_backward() -> None:
    # (batch, frames, positions, 3C): a channels-last video's own order, each position's frames positions x 3C
    # apart; the same attention as on the (batch * positions, frames, 3C) copy, in the input's layout
    torch.manual_seed(0)
    b, f, p, heads, head_dim = 2, 5, 3, 2, 32
    qkv = torch.randn(b, f, p, 3 * heads * head_dim, requires_grad=True)
    cos, sin = rotary_cos_sin(f, head_dim, 10000.0, "cpu")
    out = ffa.fused_frame_attention(qkv, cos, sin, heads)
    assert out.shape == (b, f, p, heads * head_dim)
    sequences = qkv.transpose(1, 2).reshape(b * p, f, -1)
    expected = _reference(sequences, cos, sin, heads).view(b, p, f, -1).transpose(1, 2)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    grad = torch.randn_like(out)
    (got,), (want,) = torch.autograd.grad(out, qkv, grad), torch.autograd.grad(expected, qkv, grad)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_bfloat16_stays_within_rounding_of_float32() -> None:
    torch.manual_seed(0)
    qkv = torch.randn(4, 16, 3 * 2 * 32)
    cos, sin = rotary_cos_sin(16, 32, 10000.0, "cpu")
    exact = _reference(qkv, cos, sin, 2)
    out = ffa.fused_frame_attention(qkv.bfloat16(), cos, sin, 2)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), exact, rtol=0, atol=0.03)


def test_strided_input_gives_the_same_result() -> None:
    qkv = torch.randn(16, 3, 3 * 32).transpose(0, 1)  # (3, 16, 96), not contiguous
    cos, sin = rotary_cos_sin(16, 32, 10000.0, "cpu")
    torch.testing.assert_close(ffa.fused_frame_attention(qkv, cos, sin, 1), _reference(qkv, cos, sin, 1))


def test_supported_only_where_the_kernel_applies() -> None:
    ok = torch.randn(2, 16, 3 * 64)
    assert ffa.supported(ok, 2, CPU_TOO)  # two heads of 32
    assert not ffa.supported(torch.randn(2, ffa.MAX_FRAMES + 1, 3 * 64), 2, CPU_TOO)  # longer clips: SDPA's kernels
    assert not ffa.supported(torch.randn(2, 16, 3 * 80), 2, CPU_TOO)  # head size 40: not a power of two
    assert not ffa.supported(torch.randn(2, 16, 3 * 32), 2, CPU_TOO)  # head size 16: below tl.dot's minimum
    assert not ffa.supported(ok.double(), 2, CPU_TOO)
    assert not ffa.supported(ok, 2, frozenset())  # a plain layer's: off until enable_fast_training
    assert not ffa.supported(ok, 2)  # the default devices: the CPU keeps the tensor-op path outside these tests
    assert TemporalTransformer(64, head_dim=32).fused_attention_devices == frozenset()


def _layer_outputs(layer: TemporalTransformer, x: torch.Tensor, frames: int):
    out = layer(x, frames)
    grads = torch.autograd.grad(out.square().sum(), [x, *layer.parameters()])
    return out, grads


@pytest.mark.parametrize("compiled", [False, True])
def test_temporal_transformer_same_with_and_without_the_kernel(monkeypatch, compiled) -> None:
    torch.manual_seed(0)
    layer = TemporalTransformer(64, head_dim=32)
    layer.fused_attention_devices = CPU_TOO
    for p in layer.parameters():  # off the identity init, so attention changes the output
        p.data.add_(0.1 * torch.randn_like(p))
    x = torch.randn(2 * 8, 64, 3, 3, requires_grad=True)
    ops: list[str] = []
    if compiled:
        from torch._dynamo.backends.debugging import aot_eager

        def backend(gm, example_inputs):  # dynamo's graph (its ops recorded), then AOTAutograd, run eagerly
            ops.extend(str(node.target) for node in gm.graph.nodes)
            return aot_eager(gm, example_inputs)

        run = torch.compile(layer, backend=backend, dynamic=False)
    else:
        original = ffa.fused_frame_attention
        monkeypatch.setattr(ffa, "fused_frame_attention", lambda *a: ops.append("fused") or original(*a))
        run = layer
    fused, fused_grads = _layer_outputs(run, x, 8)
    assert any("frame_attention" in op or op == "fused" for op in ops), "the layer did not take the fused path"
    layer.fused_attention_devices = frozenset()
    plain, plain_grads = _layer_outputs(layer, x, 8)
    # The same float32 math summed in another order: outputs (up to about 5) differ by a few ulps; the
    # gradients of out.square().sum() reach a few hundred, and near-zero entries of a weight's gradient
    # differ by the rounding of that scale (about 1e-5..1e-4, more on CPUs that sum in other orders). An
    # error in either path would be of the values' own size.
    torch.testing.assert_close(fused, plain, rtol=1e-4, atol=1e-4)
    for got, want in zip(fused_grads, plain_grads):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("fused", [False, True])
def test_inference_on_channels_last_maps_keeps_tokens_frame_major_with_the_same_numbers(monkeypatch, fused) -> None:
    torch.manual_seed(0)
    layer = TemporalTransformer(64, head_dim=32)
    layer.frame_major = True  # as enable_fast_inference sets it
    if fused:
        layer.fused_attention_devices = CPU_TOO
    for p in layer.parameters():  # off the identity init, so attention changes the output
        p.data.add_(0.1 * torch.randn_like(p))
    x = torch.randn(2 * 5, 64, 3, 4).contiguous(memory_format=torch.channels_last)
    orders, blocks = [], layer._blocks
    monkeypatch.setattr(layer, "_blocks", lambda t, *rest: orders.append(tuple(t.shape)) or blocks(t, *rest))
    with torch.no_grad():
        frame_major = layer(x, 5)
        layer.frame_major = False  # the plain layer's default
        sequences = layer(x, 5)
        layer.frame_major = True
        plain = layer(x.contiguous(), 5)  # NCHW maps: the sequence order
    with_grad = layer(x, 5)  # training: the sequence order (its memory estimates were measured with it)
    # (batch, frames, h * w, channels): a view of the channels-last map; else (batch * h * w, frames, channels)
    assert orders == [(2, 5, 12, 64), (24, 5, 64), (24, 5, 64), (24, 5, 64)]
    assert frame_major.is_contiguous(memory_format=torch.channels_last)
    for other in (sequences, plain, with_grad):
        torch.testing.assert_close(frame_major, other.detach(), rtol=1e-5, atol=1e-5)
