"""GEGLU's projection and gate as one Triton matmul (inference) computes diffusers' GEGLU; training and
unsupported inputs keep diffusers' forward. On the CPU the kernel runs through Triton's interpreter."""

from __future__ import annotations

import pytest
import torch
from diffusers.models.activations import GEGLU

from sdvideo.models import fused_geglu as fg

pytestmark = pytest.mark.skipif(not fg.HAVE_TRITON, reason="Triton is a test dependency (pip install -e .[test])")


@pytest.fixture
def on_cpu(monkeypatch):
    monkeypatch.setattr(fg, "DEVICES", {"cuda", "cpu"})


def _reference(x, weight, bias):
    h = torch.nn.functional.linear(x, weight, bias)
    value, gate = h.chunk(2, dim=-1)
    return value * torch.nn.functional.gelu(gate)


@pytest.mark.parametrize("rows,k,n,bias", [(37, 24, 40, True), (16, 16, 16, False), (5, 48, 8, True)])
def test_kernel_matches_projection_then_gate(rows, k, n, bias) -> None:
    torch.manual_seed(rows)
    x = torch.randn(rows, k)
    weight = torch.randn(2 * n, k) / k**0.5
    b = torch.randn(2 * n) if bias else None
    torch.testing.assert_close(fg.geglu(x, weight, b), _reference(x, weight, b), rtol=1e-5, atol=1e-5)


def _spied(monkeypatch) -> list:
    calls = []
    original = fg.geglu
    monkeypatch.setattr(fg, "geglu", lambda *a: calls.append(a[0].shape) or original(*a))
    return calls


def test_module_uses_the_kernel_for_inference_only(on_cpu, monkeypatch) -> None:
    torch.manual_seed(0)
    plain = GEGLU(24, 40)
    fused = GEGLU(24, 40)
    fused.load_state_dict(plain.state_dict())
    assert fg.use_fused_geglu(fused) == 1 and isinstance(fused, fg.FusedGEGLU)
    calls = _spied(monkeypatch)
    x = torch.randn(2, 7, 24, requires_grad=True)
    with torch.no_grad():
        torch.testing.assert_close(fused(x), plain(x), rtol=1e-5, atol=1e-5)
    assert calls == [torch.Size([2, 7, 24])]
    out = fused(x)  # autograd on: diffusers' forward, gradients as before
    assert len(calls) == 1 and out.requires_grad
    (g,), (want,) = torch.autograd.grad(out.sum(), x), torch.autograd.grad(plain(x).sum(), x)
    torch.testing.assert_close(g, want)
    monkeypatch.setattr(fg, "ENABLED", False)
    with torch.no_grad():
        fused(x)
    assert len(calls) == 1


def test_autocast_runs_the_projection_in_its_dtype(on_cpu, monkeypatch) -> None:
    torch.manual_seed(0)
    module = GEGLU(32, 48)
    fg.use_fused_geglu(module)
    calls = _spied(monkeypatch)
    x = torch.randn(3, 32)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = module(x)
        monkeypatch.setattr(fg, "ENABLED", False)
        expected = module(x)
    assert calls and calls[0] == torch.Size([3, 32])
    assert out.dtype == expected.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), expected.float(), rtol=0.02, atol=0.02)


def test_video_unet_geglus_are_fused_and_compile(on_cpu, video_unet, monkeypatch) -> None:
    fused = [m for m in video_unet.modules() if isinstance(m, GEGLU)]
    assert fused and all(isinstance(m, fg.FusedGEGLU) for m in fused)
    assert not any(".fused" in k for k in video_unet.state_dict())  # names and weights are GEGLU's
    module = fused[0]
    x = torch.randn(2, 5, module.proj.in_features)
    with torch.no_grad():
        compiled = torch.compile(module, backend="aot_eager", dynamic=False)
        out = compiled(x)
        monkeypatch.setattr(fg, "ENABLED", False)
        expected = module(x)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
