"""Guided sampling's two halves share the layers before the text: same prediction, half the work there."""

from __future__ import annotations

import copy

import pytest
import torch
from diffusers import DDIMScheduler, UNet2DConditionModel

from sdvideo.fast.guidance_pair import shared_prefix_modules
from sdvideo.models.presets import preset
from sdvideo.models.video_unet import inflate
from sdvideo.sampling.sampler import denoise_video


def _batch_sizes(video) -> tuple[dict[str, list[int]], list]:
    """Batch size each shared module and the first cross-attention see, per call."""
    seen: dict[str, list[int]] = {}
    spatial = video.unet.down_blocks[0].attentions[0].spatial.transformer_blocks[0]
    modules = dict(resnet=video.unet.down_blocks[0].resnets[0], self_attention=spatial.attn1,
                   cross_attention=spatial.attn2, next_resnet=video.unet.down_blocks[1].resnets[0])
    handles = [m.register_forward_pre_hook(lambda m, a, name=name: seen.setdefault(name, []).append(a[0].shape[0]))
               for name, m in modules.items()]
    return seen, handles


def _pair_inputs(frames: int = 3):
    torch.manual_seed(1)
    x = torch.randn(1, 4, frames, 16, 16)
    text, negative = torch.randn(1, 77, 32), torch.randn(1, 77, 32)
    return torch.cat([x, x]), torch.tensor([500, 500]), torch.cat([negative, text])


def test_shared_modules_are_those_before_the_text(video_unet) -> None:
    block = video_unet.unet.down_blocks[0]
    assert shared_prefix_modules(video_unet.unet) == [block.resnets[0], block.attentions[0].spatial.transformer_blocks[0].attn1]


def test_guidance_pair_gives_the_same_prediction_and_runs_the_shared_layers_on_one_half(video_unet) -> None:
    x, t, text = _pair_inputs()
    video_unet.enable_fast_inference(["guidance-pair"])
    seen, handles = _batch_sizes(video_unet)
    try:
        with torch.no_grad():
            plain = video_unet(x, t, text, fps=8.0).sample
            shared = video_unet(x, t, text, fps=8.0, guidance_pair=True).sample
    finally:
        for h in handles:
            h.remove()
    torch.testing.assert_close(shared, plain, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(plain[0], plain[1], atol=1e-3)  # the halves' text differs, and so do their outputs
    # 2 videos x 3 frames, plain call then shared; these spies run after the sharing pre-hooks (registered first).
    assert seen == dict(resnet=[6, 3], self_attention=[6, 3], cross_attention=[6, 6], next_resnet=[6, 6])
    assert video_unet.frame_context.guidance_pair is True
    with torch.no_grad():
        video_unet(x, t, text)  # a plain call turns the sharing off again
    assert video_unet.frame_context.guidance_pair is False


def test_shared_layers_compute_one_half(video_unet) -> None:
    x, t, text = _pair_inputs()
    video_unet.enable_fast_inference(["guidance-pair"])
    inner = []
    conv = video_unet.unet.down_blocks[0].resnets[0].conv1.spatial  # inside the shared resnet
    attn = video_unet.unet.down_blocks[0].attentions[0].spatial.transformer_blocks[0].attn1.to_q
    handles = [m.register_forward_pre_hook(lambda m, a, name=name: inner.append((name, a[0].shape[0])))
               for name, m in (("conv", conv), ("to_q", attn))]
    try:
        with torch.no_grad():
            video_unet(x, t, text, guidance_pair=True)
            video_unet(x, t, text)
    finally:
        for h in handles:
            h.remove()
    assert inner == [("conv", 3), ("to_q", 3), ("conv", 6), ("to_q", 6)]


def test_guidance_pair_needs_two_halves(video_unet) -> None:
    x, t, text = _pair_inputs()
    with pytest.raises(ValueError, match="guidance_pair needs a batch of two halves, got 1 videos"):
        video_unet(x[:1], t[:1], text[:1], guidance_pair=True)


def test_hooks_come_with_enable_fast_inference_only_and_only_once() -> None:
    video = inflate(UNet2DConditionModel(**preset("tiny")["unet"])).eval()
    shared = shared_prefix_modules(video.unet)
    assert not any(m._forward_pre_hooks or m._forward_hooks for m in shared)  # training never runs them
    x, t, text = _pair_inputs()
    with torch.no_grad():
        plain = video(x, t, text).sample
        # a pair call on the plain model runs both halves whole: no hook comes with it
        torch.testing.assert_close(video(x, t, text, guidance_pair=True).sample, plain, rtol=1e-5, atol=1e-5)
        assert not any(m._forward_pre_hooks or m._forward_hooks for m in shared)
        for _ in range(2):  # enabling again switches nothing on twice
            video.enable_fast_inference(["guidance-pair"])
            torch.testing.assert_close(video(x, t, text, guidance_pair=True).sample, plain, rtol=1e-5, atol=1e-5)
    assert [len(m._forward_pre_hooks) + len(m._forward_hooks) for m in shared] == [2, 2]


def test_compiled_regions_share_the_same_way(video_unet) -> None:
    x, t, text = _pair_inputs(frames=2)
    fast = copy.deepcopy(video_unet).enable_fast_inference(["guidance-pair"])
    compiled = fast.compile_regions(channels_last=False, backend="aot_eager")
    with torch.no_grad():
        plain = video_unet(x, t, text).sample
        shared = compiled(x, t, text, guidance_pair=True).sample
        unshared = compiled(x, t, text).sample  # the flag is guarded: this call recompiles without sharing
    torch.testing.assert_close(shared, plain, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(unshared, plain, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("guidance_scale,expected", [(7.5, 3), (1.0, 3)])
def test_denoise_video_shares_only_when_guided(video_unet, guidance_scale, expected) -> None:
    scheduler = DDIMScheduler(num_train_timesteps=1000)
    text, negative = torch.randn(1, 77, 32), torch.randn(1, 77, 32)
    video_unet.enable_fast_inference(["guidance-pair"])
    conv = video_unet.unet.down_blocks[0].resnets[0].conv1.spatial
    sizes = []
    handle = conv.register_forward_pre_hook(lambda m, a: sizes.append(a[0].shape[0]))
    try:
        with torch.no_grad():
            denoise_video(video_unet, scheduler, text, negative, 3, (8, 8), steps=2, guidance_scale=guidance_scale,
                          generator=torch.Generator().manual_seed(0), progress=False)
    finally:
        handle.remove()
    # guided: 2 videos x 3 frames, of which the shared resnet computes one video; unguided: 1 video, no pair
    assert sizes == [expected, expected]
