"""The speed and memory paths compute what the plain paths compute."""

from __future__ import annotations

import copy

import pytest
import torch
from diffusers import UNet2DConditionModel
from torch import nn

from sdvideo.models.lean_conv import LeanConv2d, make_convs_lean
from sdvideo.models.presets import preset
from sdvideo.models.video_unet import inflate


def _saved_bytes(fn) -> int:
    total = 0

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return total, out


@pytest.mark.parametrize("stride,groups,bias", [(1, 1, True), (2, 1, False), (1, 4, True)])
def test_lean_conv_gives_the_same_input_gradient_and_saves_only_the_weight(stride, groups, bias) -> None:
    torch.manual_seed(0)
    plain = nn.Conv2d(8, 16, 3, stride=stride, padding=1, groups=groups, bias=bias).requires_grad_(False)
    lean = make_convs_lean(copy.deepcopy(plain))
    assert type(lean) is LeanConv2d
    x = torch.randn(2, 8, 9, 11, requires_grad=True)
    saved_plain, y_plain = _saved_bytes(lambda: plain(x))
    saved_lean, y_lean = _saved_bytes(lambda: lean(x))
    assert torch.equal(y_plain, y_lean)
    g = torch.randn_like(y_plain)
    (gx_plain,) = torch.autograd.grad(y_plain, x, g)
    (gx_lean,) = torch.autograd.grad(y_lean, x, g)
    torch.testing.assert_close(gx_lean, gx_plain, rtol=1e-6, atol=1e-6)
    assert saved_plain >= x.numel() * 4  # the plain conv keeps its input...
    assert saved_lean == lean.weight.numel() * 4  # ...the lean one only its weight


def test_lean_conv_trains_normally_when_its_weight_trains() -> None:
    conv = make_convs_lean(nn.Conv2d(4, 4, 3, padding=1))
    x = torch.randn(1, 4, 5, 5, requires_grad=True)
    conv(x).square().sum().backward()
    assert conv.weight.grad is not None and x.grad is not None


def test_lean_conv_under_autocast_matches_plain() -> None:
    torch.manual_seed(0)
    plain = nn.Conv2d(4, 8, 3, padding=1).requires_grad_(False)
    lean = make_convs_lean(copy.deepcopy(plain))
    x = torch.randn(2, 4, 6, 6, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y_plain, y_lean = plain(x), lean(x)
    assert y_lean.dtype == y_plain.dtype == torch.bfloat16 and torch.equal(y_plain, y_lean)
    (gp,) = torch.autograd.grad(y_plain.float().sum(), x)
    (gl,) = torch.autograd.grad(y_lean.float().sum(), x)
    assert gl.dtype == torch.float32
    torch.testing.assert_close(gl, gp)


def _tiny_video_unet():
    torch.manual_seed(0)
    video = inflate(UNet2DConditionModel(**preset("tiny")["unet"])).freeze_spatial()
    for p in video.temporal_parameters():  # leave the identity init so temporal layers matter
        p.data.add_(0.05 * torch.randn_like(p))
    return video


def _step(video, x, t, text):
    out = video(x, t, text, fps=torch.tensor([8.0])).sample
    loss = out.square().mean()
    loss.backward()
    grads = {n: p.grad.clone() for n, p in video.named_parameters() if p.grad is not None}
    video.zero_grad(set_to_none=True)
    return out.detach(), grads


def test_inflated_unet_convs_are_lean_and_whole_model_gradients_match_plain_convs() -> None:
    video = _tiny_video_unet()
    assert all(type(m) is not nn.Conv2d for m in video.modules())
    plain = copy.deepcopy(video)
    for m in plain.modules():
        if type(m) is LeanConv2d:
            m.__class__ = nn.Conv2d
    dim = preset("tiny")["unet"]["cross_attention_dim"]
    x, text = torch.randn(1, 4, 3, 16, 16), torch.randn(1, 7, dim)
    t = torch.tensor([500])
    out_lean, g_lean = _step(video, x, t, text)
    out_plain, g_plain = _step(plain, x, t, text)
    assert torch.equal(out_lean, out_plain) and g_lean.keys() == g_plain.keys() and g_lean
    for name in g_plain:
        torch.testing.assert_close(g_lean[name], g_plain[name], rtol=1e-5, atol=1e-6)


def test_regional_compile_matches_eager() -> None:
    # Two levels and one layer per block: every kind of compiled region, few shapes to compile.
    small = dict(preset("tiny")["unet"], block_out_channels=(32, 32), layers_per_block=1,
                 down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"))
    torch.manual_seed(0)
    video = inflate(UNet2DConditionModel(**small)).freeze_spatial()
    for p in video.temporal_parameters():
        p.data.add_(0.05 * torch.randn_like(p))
    compiled = copy.deepcopy(video).compile_regions(backend="aot_eager")  # dynamo + AOTAutograd, no codegen
    assert compiled.state_dict().keys() == video.state_dict().keys()
    dim = preset("tiny")["unet"]["cross_attention_dim"]
    x, text = torch.randn(1, 4, 3, 16, 16), torch.randn(1, 7, dim)
    t = torch.tensor([500])
    out_eager, g_eager = _step(video, x, t, text)
    out_comp, g_comp = _step(compiled, x, t, text)
    torch.testing.assert_close(out_comp, out_eager, rtol=1e-5, atol=1e-5)
    for name in g_eager:
        torch.testing.assert_close(g_comp[name], g_eager[name], rtol=1e-4, atol=1e-5)


def test_temporal_layers_keep_channels_last_and_match_nchw() -> None:
    from sdvideo.models.temporal_attention import TemporalTransformer
    from sdvideo.models.temporal_conv import TemporalConv

    torch.manual_seed(0)
    x = torch.randn(2 * 4, 64, 3, 5)
    conv, attn = TemporalConv(64), TemporalTransformer(64, head_dim=32)
    for layer in (conv, attn):
        for p in layer.parameters():
            p.data.add_(0.1 * torch.randn_like(p))  # away from the identity initialisation
        plain = layer(x, 4)
        cl = layer(x.to(memory_format=torch.channels_last), 4)
        assert cl.is_contiguous(memory_format=torch.channels_last) and not cl.is_contiguous()
        assert plain.is_contiguous()
        torch.testing.assert_close(cl, plain, rtol=1e-5, atol=1e-5)


def test_channels_last_video_unet_stays_channels_last_and_matches() -> None:
    video = _tiny_video_unet()
    dim = preset("tiny")["unet"]["cross_attention_dim"]
    x, text = torch.randn(1, 4, 3, 16, 16), torch.randn(1, 7, dim)
    t = torch.tensor([500])
    out_plain, g_plain = _step(video, x, t, text)
    layouts = []
    cl = copy.deepcopy(video).to(memory_format=torch.channels_last)
    for module in cl.unet.modules():
        module.register_forward_hook(lambda m, i, o: layouts.append(o.is_contiguous(memory_format=torch.channels_last))
                                     if torch.is_tensor(o) and o.ndim == 4 else None)
    out_cl, g_cl = _step(cl, x.to(memory_format=torch.channels_last_3d), t, text)
    assert layouts and all(layouts)  # no layer hands NCHW to the next (each would convert back)
    torch.testing.assert_close(out_cl, out_plain, rtol=1e-5, atol=1e-5)
    for name in g_plain:
        torch.testing.assert_close(g_cl[name], g_plain[name], rtol=1e-4, atol=1e-5)


def test_compile_regions_compiles_static_shapes_unless_told(monkeypatch) -> None:
    seen = []
    monkeypatch.setattr(nn.Module, "compile", lambda self, **options: seen.append(options))
    video = _tiny_video_unet()
    video.compile_regions()
    assert seen and all(o == {"dynamic": False} for o in seen)  # one graph per block shape, never shape-generic
    seen.clear()
    video.compile_regions(dynamic=True, mode="max-autotune")
    assert seen and all(o == {"dynamic": True, "mode": "max-autotune"} for o in seen)
