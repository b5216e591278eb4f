"""The model as built is the network its file shows; the faster forms come only with an explicit call
(sdvideo/fast/): a freshly inflated VideoUNet holds only diffusers', torch's and sdvideo's own model classes,
no forward hook, no fast path switched on; after `enable_fast_inference()` (with the CPU among its devices, so
every path runs here) its predictions match the plain model's."""

from __future__ import annotations

import copy

import pytest
import torch
from diffusers import UNet2DConditionModel

from sdvideo.fast import INFERENCE_PATHS, TRAINING_PATHS, enable_fast_inference
from sdvideo.models.presets import preset
from sdvideo.models.temporal_attention import TemporalTransformer
from sdvideo.models.video_unet import VideoUNet, inflate

pytestmark = pytest.mark.usefixtures("one_thread")
CPU_TOO = frozenset({"cuda", "cpu"})


def _plain_model_classes(video: VideoUNet) -> list[str]:
    """Modules whose class is not diffusers', torch's or one of sdvideo's model classes (sdvideo.models, not
    its lean convolutions); and modules carrying forward hooks."""
    odd = []
    for name, module in video.named_modules():
        kind = type(module)
        where = kind.__module__
        plain = (where.startswith(("diffusers.", "torch.")) or where.startswith("sdvideo.models.")) \
            and kind.__name__ != "LeanConv2d"
        if not plain or module._forward_hooks or module._forward_pre_hooks:
            odd.append(f"{name}: {where}.{kind.__name__}")
    return odd


def _tiny(**options) -> VideoUNet:
    torch.manual_seed(0)
    video = inflate(UNet2DConditionModel(**preset("tiny")["unet"]), **options).eval()
    for p in video.temporal_parameters():  # off the identity init, so the temporal layers matter
        p.data.add_(0.05 * torch.randn_like(p))
    return video


@pytest.mark.parametrize("options", [{}, dict(condition_channels=5, temporal_embedding=True)])
def test_inflated_and_constructed_models_switch_no_class_and_hook_nothing(options) -> None:
    video = _tiny(**options)
    assert _plain_model_classes(video) == []
    layers = [m for m in video.modules() if isinstance(m, TemporalTransformer)]
    assert layers and all(not m.fused_attention_devices and not m.linear_gelu_devices and not m.frame_major
                          for m in layers)
    with torch.device("meta"):
        built = VideoUNet(unet_config=preset("tiny")["unet"], **options)  # as from_pretrained builds it
    assert _plain_model_classes(built) == []
    fast = copy.deepcopy(video).enable_fast_inference()
    assert _plain_model_classes(fast)  # the switches and hooks came with the call, on the model it was given
    assert _plain_model_classes(video) == []


def test_fast_inference_matches_the_plain_model(monkeypatch) -> None:
    from sdvideo.fast import fused_linear_gelu
    from sdvideo.models import fused_frame_attention

    ran = []
    for module, name in ((fused_frame_attention, "fused_frame_attention"), (fused_linear_gelu, "linear_gelu")):
        original = getattr(module, name)
        monkeypatch.setattr(module, name, lambda *a, _f=original, _n=name: ran.append(_n) or _f(*a))
    plain = _tiny(temporal_embedding=True)
    fast = enable_fast_inference(copy.deepcopy(plain), devices=CPU_TOO)
    swapped = {type(m).__name__ for m in fast.modules()} - {type(m).__name__ for m in plain.modules()}
    assert swapped == {"SubpixelUpsample2D", "BiasAfterMatmulLinear", "ChannelStatsGroupNorm"}
    assert all(m.fused_attention_devices == CPU_TOO and m.linear_gelu_devices == CPU_TOO and m.frame_major
               for m in fast.modules() if isinstance(m, TemporalTransformer))
    g = torch.Generator().manual_seed(1)
    x = torch.randn(1, 4, 3, 8, 8, generator=g)
    text = torch.randn(2, 7, plain.unet.config.cross_attention_dim, generator=g)
    pair, t = torch.cat([x, x]), torch.tensor([500, 500])
    with torch.no_grad():
        expected = plain(pair, t, text, fps=8.0).sample
        assert ran == []
        # guided pair (shared layers), fused temporal attention, GELU epilogue, subpixel upsamplers
        torch.testing.assert_close(fast(pair, t, text, fps=8.0, guidance_pair=True).sample, expected,
                                   rtol=1e-4, atol=1e-4)
        assert "linear_gelu" in ran and ("fused_frame_attention" in ran) == fused_frame_attention.HAVE_TRITON
        fast.to_channels_last()  # frame-major temporal tokens on channels-last maps
        torch.testing.assert_close(fast(pair, t, text, fps=8.0, guidance_pair=True).sample, expected,
                                   rtol=1e-4, atol=1e-4)


def test_paths_are_named_and_checked() -> None:
    video = _tiny()
    with pytest.raises(ValueError, match="unknown paths frame-major"):
        video.enable_fast_training(["frame-major-tokens"])  # an inference-only path
    assert set(TRAINING_PATHS) - set(INFERENCE_PATHS) == {"lean-convs"}  # no effect without autograd
    video.enable_fast_inference(["frame-major-tokens"])
    assert _plain_model_classes(video) == []  # an attribute of the temporal layers, no class switched
    assert all(m.frame_major for m in video.modules() if isinstance(m, TemporalTransformer))


def test_sample_enables_fast_inference_before_compiling(monkeypatch, base) -> None:
    from sdvideo.sampling import sample
    from sdvideo.sampling.pipeline import VideoPipeline

    pipe = VideoPipeline(vae=base.vae, text_encoder=base.text_encoder, tokenizer=base.tokenizer,
                         unet=inflate(base.unet), scheduler=base.scheduler)
    order = []
    enable = VideoUNet.enable_fast_inference
    monkeypatch.setattr(VideoPipeline, "from_run", classmethod(lambda cls, *args, **kwargs: pipe))
    monkeypatch.setattr(VideoUNet, "enable_fast_inference",
                        lambda self, *args, **kwargs: order.append("fast") or enable(self, *args, **kwargs))
    monkeypatch.setattr(VideoUNet, "compile_regions", lambda self, **options: order.append("compile") or self)
    assert sample.load_pipeline("a-run", "ddim", "cpu", progress=False, compile=True) is pipe
    assert order == ["fast", "compile"]  # `sample --compile`: the fast paths first, traced into the regions
    assert pipe.vae is not base.vae and _plain_model_classes(pipe.unet)  # the VAE's upsamplers in a copy
