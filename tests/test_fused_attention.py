"""Fused input projections compute what diffusers' attention processor computes, with fewer matmuls."""

from __future__ import annotations

import copy

import torch
from diffusers import UNet2DConditionModel
from diffusers.models.attention_processor import Attention, AttnProcessor2_0
from torch.utils._python_dispatch import TorchDispatchMode

from sdvideo.models.fused_attention import FusedProjectionAttnProcessor, fuse_attention_projections
from sdvideo.models.presets import preset
from sdvideo.models.video_unet import inflate

MATMULS = {torch.ops.aten.mm.default, torch.ops.aten.addmm.default, torch.ops.aten.bmm.default}


class _CountMatmuls(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += func in MATMULS
        return func(*args, **(kwargs or {}))


def _matmuls(fn) -> int:
    with _CountMatmuls() as counter:
        fn()
    return counter.count


def test_self_and_cross_attention_match_and_use_fewer_matmuls() -> None:
    torch.manual_seed(0)
    self_attn = Attention(32, heads=4, dim_head=8)
    cross_attn = Attention(32, cross_attention_dim=24, heads=4, dim_head=8)
    x, text = torch.randn(2, 10, 32), torch.randn(2, 7, 24)
    for attn, context, plain_mm, fused_mm in ((self_attn, None, 4, 2), (cross_attn, text, 4, 3)):
        plain = lambda: AttnProcessor2_0()(attn, x, context)  # noqa: E731
        fused = lambda: FusedProjectionAttnProcessor()(attn, x, context)  # noqa: E731
        torch.testing.assert_close(fused(), plain(), rtol=1e-5, atol=1e-6)
        # self: q, k, v, out -> qkv, out; cross: q, k, v, out -> q, kv, out
        assert (_matmuls(plain), _matmuls(fused)) == (plain_mm, fused_mm)


def test_modules_it_does_not_cover_run_diffusers_processor() -> None:
    torch.manual_seed(0)
    attn = Attention(32, heads=4, dim_head=8, residual_connection=True, norm_num_groups=4)
    x = torch.randn(2, 10, 32)
    assert torch.equal(FusedProjectionAttnProcessor()(attn, x), AttnProcessor2_0()(attn, x))


def _loss_and_grads(video, x, t, text):
    out = video(x, t, text, fps=torch.tensor([8.0])).sample
    out.square().mean().backward()
    grads = {n: p.grad.clone() for n, p in video.named_parameters() if p.grad is not None}
    video.zero_grad(set_to_none=True)
    return out.detach(), grads


def test_fused_video_unet_matches_plain_in_outputs_and_every_gradient() -> None:
    torch.manual_seed(0)
    plain = inflate(UNet2DConditionModel(**preset("tiny")["unet"]))  # spatial weights train too: each gets its gradient
    for p in plain.temporal_parameters():
        p.data.add_(0.05 * torch.randn_like(p))
    fused = copy.deepcopy(plain)
    attention_modules = sum(isinstance(m, Attention) for m in plain.modules())
    assert fuse_attention_projections(fused) == attention_modules > 0
    assert fused.state_dict().keys() == plain.state_dict().keys()  # nothing stored fused
    dim = preset("tiny")["unet"]["cross_attention_dim"]
    x, text, t = torch.randn(1, 4, 3, 16, 16), torch.randn(1, 7, dim), torch.tensor([500])
    out_plain, g_plain = _loss_and_grads(plain, x, t, text)
    out_fused, g_fused = _loss_and_grads(fused, x, t, text)
    torch.testing.assert_close(out_fused, out_plain, rtol=1e-5, atol=1e-5)
    assert g_fused.keys() == g_plain.keys() and any(".to_q." in n for n in g_plain)
    for name in g_plain:
        torch.testing.assert_close(g_fused[name], g_plain[name], rtol=1e-4, atol=1e-6)
