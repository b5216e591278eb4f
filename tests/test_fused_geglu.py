"""GEGLU's projection and gate as one matmul (models/fused_geglu.py) computes diffusers' GEGLU: the kernel at
ragged sizes (rows, outputs and the reduction not multiples of a tile), with and without bias, from strided
input; `FusedGEGLU` in a diffusers block, eager and compiled, taken in inference only, state dict unchanged.
On the CPU the kernel runs through Triton's interpreter (tests/conftest.py), in fp32."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from diffusers.models.activations import GEGLU
from diffusers.models.attention import BasicTransformerBlock

from sdvideo.models import fused_geglu

pytestmark = [pytest.mark.skipif(not fused_geglu.HAVE_TRITON, reason="Triton is a test dependency"),
              pytest.mark.usefixtures("one_thread")]


@pytest.fixture
def on_cpu(monkeypatch):
    """`FusedGEGLU` takes the kernel on the CPU too; returns a list of the kernel calls' input shapes."""
    monkeypatch.setattr(fused_geglu, "DEVICES", {"cuda", "cpu"})
    calls = []
    original = fused_geglu.geglu

    def counted(x, weight, bias):
        calls.append(tuple(x.shape))
        return original(x, weight, bias)

    monkeypatch.setattr(fused_geglu, "geglu", counted)
    return calls


def _reference(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    value, gate = F.linear(x, weight, bias).chunk(2, dim=-1)
    return value * F.gelu(gate)


@pytest.mark.parametrize("rows,k,n,bias", [(37, 24, 21, True), (16, 32, 16, False), (5, 7, 3, True), (64, 48, 40, True)])
def test_kernel_matches_projection_then_gate(rows, k, n, bias) -> None:
    torch.manual_seed(rows + k + n)
    x, weight = torch.randn(rows, k), torch.randn(2 * n, k) / k**0.5
    b = torch.randn(2 * n) if bias else None
    out = fused_geglu.geglu(x, weight, b)
    assert out.shape == (rows, n)
    torch.testing.assert_close(out, _reference(x, weight, b), rtol=1e-5, atol=1e-5)


def test_leading_dimensions_and_strided_input() -> None:
    torch.manual_seed(0)
    x = torch.randn(3, 24, 10).transpose(1, 2)  # (3, 10, 24), not contiguous
    weight, bias = torch.randn(2 * 12, 24) / 24**0.5, torch.randn(2 * 12)
    out = fused_geglu.geglu(x, weight, bias)
    assert out.shape == (3, 10, 12)
    torch.testing.assert_close(out, _reference(x, weight, bias), rtol=1e-5, atol=1e-5)


def _block() -> BasicTransformerBlock:
    torch.manual_seed(0)
    block = BasicTransformerBlock(32, 2, 16, cross_attention_dim=24, activation_fn="geglu").eval()
    assert fused_geglu.install_fused_geglu(block) == 1
    return block


def test_block_in_inference_takes_the_kernel_and_matches_diffusers(on_cpu, monkeypatch) -> None:
    block = _block()
    state = block.state_dict()
    x, text = torch.randn(2, 9, 32), torch.randn(2, 4, 24)
    with torch.no_grad():
        fused = block(x, encoder_hidden_states=text)
    assert on_cpu == [(2, 9, 32)]
    monkeypatch.setattr(fused_geglu, "ENABLED", False)
    with torch.no_grad():
        plain = block(x, encoder_hidden_states=text)
    assert len(on_cpu) == 1
    torch.testing.assert_close(fused, plain, rtol=1e-5, atol=1e-5)
    assert block.state_dict().keys() == state.keys()
    assert isinstance(block.ff.net[0], GEGLU)


def test_training_keeps_diffusers_forward_and_gradients(on_cpu) -> None:
    block = _block()
    x = torch.randn(2, 9, 32, requires_grad=True)
    block(x, encoder_hidden_states=torch.randn(2, 4, 24)).sum().backward()
    assert on_cpu == []  # autograd: diffusers' own forward
    assert block.ff.net[0].proj.weight.grad is not None and x.grad is not None


def test_compiled_block_matches_eager(on_cpu) -> None:
    block = _block()
    x, text = torch.randn(2, 9, 32), torch.randn(2, 4, 24)
    with torch.no_grad():
        eager = block(x, encoder_hidden_states=text)
        compiled = torch.compile(block, backend="aot_eager", fullgraph=True)(x, encoder_hidden_states=text)
    torch.testing.assert_close(compiled, eager, rtol=1e-5, atol=1e-5)


def test_supported_only_for_half_precision_inference_on_chosen_devices(monkeypatch) -> None:
    x = torch.randn(2, 8)
    monkeypatch.setattr(fused_geglu, "INTERPRETED", False)  # as on a GPU: half precision only
    monkeypatch.setattr(fused_geglu, "DEVICES", {"cuda", "cpu"})
    with torch.no_grad():
        assert fused_geglu.supported(x, torch.bfloat16)
        assert not fused_geglu.supported(x, torch.float32)
    assert not fused_geglu.supported(x, torch.bfloat16)  # autograd on
    monkeypatch.setattr(fused_geglu, "DEVICES", {"cuda"})
    with torch.no_grad():
        assert not fused_geglu.supported(x, torch.bfloat16)  # a CPU tensor
        assert not fused_geglu.supported(torch.empty(2, 8, device="meta"), torch.bfloat16)
    monkeypatch.setattr(fused_geglu, "DEVICES", {"cuda", "cpu"})
    with torch.no_grad():
        assert fused_geglu.supported(torch.randn(2, fused_geglu.MAX_K), torch.bfloat16)
        assert not fused_geglu.supported(torch.randn(2, fused_geglu.MAX_K + 1), torch.bfloat16)  # cuBLAS faster


def test_installed_in_every_video_unet(base) -> None:
    from sdvideo.models.video_unet import inflate

    unet = inflate(base.unet)
    geglus = [m for m in unet.modules() if isinstance(m, GEGLU)]
    assert geglus and all(type(m) is fused_geglu.FusedGEGLU for m in geglus)
