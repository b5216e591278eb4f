"""The temporal feed-forward's first Linear + GELU as one matmul with a GELU epilogue (fast/fused_linear_gelu.py):
taken in inference only, same numbers as the module's own path (on the CPU `_addmm_activation` applies the exact
GELU), under autocast and compiled; and the bound the GPU's tanh-form GELU is claimed to keep."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from sdvideo.fast import fused_linear_gelu
from sdvideo.models.temporal_attention import TemporalTransformer

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def on_cpu(monkeypatch):
    """Counts the fused calls (the layers of `_layer` take the fused matmul on the CPU too); returns a list of
    their input shapes."""
    calls = []
    original = fused_linear_gelu.linear_gelu

    def counted(x, linear):
        calls.append(tuple(x.shape))
        return original(x, linear)

    monkeypatch.setattr(fused_linear_gelu, "linear_gelu", counted)
    return calls


def _layer(channels: int = 64) -> TemporalTransformer:
    torch.manual_seed(0)
    layer = TemporalTransformer(channels, head_dim=32)
    layer.linear_gelu_devices = frozenset({"cuda", "cpu"})  # as enable_fast_inference(devices=...) sets it
    for p in layer.parameters():  # off the zero init, so the feed-forward changes the output
        p.data.add_(0.1 * torch.randn_like(p))
    return layer


def test_inference_takes_the_fused_matmul_and_matches_the_plain_layer(on_cpu, monkeypatch) -> None:
    layer, x = _layer(), torch.randn(2 * 5, 64, 3, 4)
    with torch.no_grad():
        fused = layer(x, 5)
    assert on_cpu == [(2 * 3 * 4, 5, 64)]  # (sequences, frames, channels): once, the feed-forward's tokens
    layer.linear_gelu_devices = frozenset()  # the plain layer's default
    with torch.no_grad():
        plain = layer(x, 5)
    assert len(on_cpu) == 1
    torch.testing.assert_close(fused, plain, rtol=1e-6, atol=1e-6)


def test_training_keeps_the_module_path(on_cpu) -> None:
    layer, x = _layer(), torch.randn(2 * 5, 64, 3, 4)
    layer(x, 5).sum().backward()  # autograd: Linear then exact GELU, gradients as usual
    assert on_cpu == [] and layer.ff[0].weight.grad is not None


def test_autocast_runs_the_fused_matmul_in_half_precision(on_cpu, monkeypatch) -> None:
    layer, tokens = _layer(), torch.randn(12, 5, 64)
    first = layer.ff[0]
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        fused = fused_linear_gelu.linear_gelu(tokens, first)
        plain = F.gelu(first(tokens))
    assert fused.dtype == plain.dtype == torch.bfloat16 and fused.shape == (12, 5, 128)
    torch.testing.assert_close(fused.float(), plain.float(), rtol=2e-2, atol=2e-2)


def test_compiled_layer_matches_eager(on_cpu) -> None:
    layer, x = _layer(), torch.randn(2 * 4, 64, 2, 3)
    compiled = torch.compile(layer, backend="aot_eager", dynamic=False)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x, 4), layer(x, 4), rtol=1e-6, atol=1e-6)
    assert len(on_cpu) == 2


def test_tanh_form_is_within_the_stated_bound_of_the_exact_gelu() -> None:
    # cuBLASLt's epilogue evaluates GELU's tanh form; the module docstring states the bound and where it peaks.
    x = torch.linspace(-12, 12, 2_400_001, dtype=torch.float64)
    gap = (F.gelu(x, approximate="tanh") - F.gelu(x)).abs()
    assert gap.max() < 4.8e-4
    peak = x[gap.argmax()]
    bf16_spacing = torch.finfo(torch.bfloat16).eps * 2.0 ** torch.floor(torch.log2(F.gelu(peak).abs()))
    assert 2.5 < peak.abs() < 3.0 and gap.max() < bf16_spacing / 30


@pytest.mark.parametrize("grad", [False, True])
def test_meta_tensors_take_the_module_path(grad) -> None:
    # The memory estimate traces the model on "meta", where autocast cannot even be queried (a GPU smoke run's
    # `train` failed so before `supported` checked the device first).
    layer = _layer().to("meta")
    with torch.set_grad_enabled(grad):
        assert layer(torch.empty(2 * 5, 64, 3, 4, device="meta"), 5).shape == (10, 64, 3, 4)
