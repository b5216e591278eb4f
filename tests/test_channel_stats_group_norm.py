"""GroupNorm from per-channel statistics (fast/channel_stats_group_norm.py): the same numbers as
F.group_norm (float64 reference, both memory layouts, large per-channel offsets, with and without affine
parameters); in compiled inference the traced graph holds no group_norm and inductor's code matches
nn.GroupNorm; eager calls, training, maps under min_pixels and other devices keep nn.GroupNorm's kernel;
installed by enable_fast_inference on every GroupNorm of a VideoUNet with the state dict unchanged, and a
compiled UNet call with it matches the plain model eager."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from compiled_graphs import traced
from sdvideo.fast import channel_stats_group_norm
from sdvideo.fast.channel_stats_group_norm import (
    ChannelStatsGroupNorm,
    group_norm_from_channel_stats,
    install_channel_stats_group_norm,
)

pytestmark = pytest.mark.usefixtures("one_thread")
CPU_TOO = frozenset({"cuda", "cpu"})  # the form on the CPU too (CUDA only by default)


def _activations(shape, seed=0) -> torch.Tensor:
    # per-channel offsets ten times the spread, as a UNet's activations can have: a sum-of-squares
    # variance would lose digits here, Welford's moments do not
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g) * 0.5 + 5 * torch.randn(shape[:2] + (1,) * (len(shape) - 2), generator=g)


def _norm(channels=12, groups=4) -> ChannelStatsGroupNorm:
    torch.manual_seed(0)
    norm = nn.GroupNorm(groups, channels)
    nn.init.normal_(norm.weight, 1.0, 0.3)
    nn.init.normal_(norm.bias, 0.0, 0.3)
    norm.__class__ = ChannelStatsGroupNorm
    norm.devices, norm.min_pixels = CPU_TOO, 1  # the tiny maps here are small
    return norm


@pytest.mark.parametrize("shape", [(3, 12, 5, 7), (2, 12, 4, 3, 5), (2, 12, 9)])
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("channels_last", [False, True])
def test_matches_group_norm_in_float64(shape, affine, channels_last) -> None:
    x = _activations(shape)
    if channels_last and x.ndim in (4, 5):
        x = x.contiguous(memory_format=torch.channels_last if x.ndim == 4 else torch.channels_last_3d)
    w, b = (torch.randn(12), torch.randn(12)) if affine else (None, None)
    exact = F.group_norm(x.double(), 4, *(t.double() if t is not None else None for t in (w, b)), 1e-5)
    out = group_norm_from_channel_stats(x, 4, w, b, 1e-5)
    assert out.dtype == torch.float32 and out.shape == x.shape
    error = (out.double() - exact).abs().max()
    native_error = (F.group_norm(x, 4, w, b, 1e-5).double() - exact).abs().max()
    assert float(error) < 2e-6 and float(error) < 4 * float(native_error) + 1e-7


def _ops(graphs) -> set:
    return {n.target for g in graphs for n in g.graph.nodes if n.op == "call_function"}


def test_compiled_inference_traces_channel_moments_with_the_same_numbers() -> None:
    norm, x = _norm(), _activations((2, 12, 6, 6))
    with torch.no_grad():
        out, graphs = traced(norm, x)
        expected = nn.GroupNorm.forward(norm, x)
    assert F.group_norm not in _ops(graphs) and torch.var_mean in _ops(graphs)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


def test_inductor_code_matches_and_keeps_group_norms_dtypes() -> None:
    norm, x = _norm(), _activations((2, 12, 8, 8)).contiguous(memory_format=torch.channels_last)
    torch._dynamo.reset()
    compiled = torch.compile(lambda x: F.silu(norm(x)), dynamic=False)
    with torch.no_grad():
        expected = F.silu(F.group_norm(x, 4, norm.weight, norm.bias))
        torch.testing.assert_close(compiled(x), expected, rtol=1e-5, atol=1e-5)
        xb = x.bfloat16()
        assert compiled(xb).dtype == torch.bfloat16  # as nn.GroupNorm on a bf16 input
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert compiled(xb).dtype == F.group_norm(xb, 4, norm.weight, norm.bias).dtype


def test_eager_training_small_maps_and_other_devices_keep_group_norm() -> None:
    norm, x = _norm(), _activations((2, 12, 4, 4))
    with torch.no_grad():
        assert not channel_stats_group_norm.supported(x, CPU_TOO, 1)  # eager: nn.GroupNorm's one kernel
    _, graphs = traced(norm, x)  # autograd on: training keeps the native op and its backward
    assert F.group_norm in _ops(graphs)
    norm.min_pixels = 17
    with torch.no_grad():
        _, graphs = traced(norm, x)  # 16 pixels a channel: below min_pixels
        assert F.group_norm in _ops(graphs)
        _, graphs = traced(norm, _activations((2, 12, 5, 4)))  # 20 pixels
        assert F.group_norm not in _ops(graphs)
    norm.devices = frozenset({"cuda"})  # the default
    with torch.no_grad():
        _, graphs = traced(norm, _activations((2, 12, 5, 4)))  # a CPU tensor
    assert F.group_norm in _ops(graphs)


def test_installed_on_every_group_norm_of_a_video_unet_and_compiled_calls_match(video_unet) -> None:
    plain = [m for m in video_unet.modules() if isinstance(m, nn.GroupNorm)]
    assert plain and all(type(m) is nn.GroupNorm for m in plain)  # inflate leaves them as they are
    model = nn.Sequential(nn.GroupNorm(2, 4), nn.Conv2d(4, 4, 1))
    keys = model.state_dict().keys()
    assert install_channel_stats_group_norm(model) == 1 and model.state_dict().keys() == keys
    fast = copy.deepcopy(video_unet).enable_fast_inference(["channel-stats-group-norm"], devices=CPU_TOO)
    switched = [m for m in fast.modules() if isinstance(m, nn.GroupNorm)]
    assert len(switched) == len(plain) and all(type(m) is ChannelStatsGroupNorm for m in switched)
    install_channel_stats_group_norm(fast.unet, CPU_TOO, min_pixels=1)  # the tiny UNet's maps are small
    compiled = fast.compile_regions(backend="aot_eager")  # dynamo + AOTAutograd
    dim = video_unet.unet.config.cross_attention_dim
    g = torch.Generator().manual_seed(1)
    x, text, t = torch.randn(1, 4, 3, 16, 16, generator=g), torch.randn(1, 7, dim, generator=g), torch.tensor([500])
    with torch.no_grad():
        torch.testing.assert_close(compiled(x, t, text).sample, video_unet(x, t, text).sample, rtol=1e-4, atol=1e-5)
