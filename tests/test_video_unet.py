"""The video UNet: identity at init, shapes, freezing, parameter counts, save/load."""

import copy

import pytest
import torch
from diffusers import UNet2DConditionModel

import sdvideo
from sdvideo.models.presets import unet_config
from sdvideo.models.temporal_attention import TemporalTransformer
from sdvideo.models.temporal_conv import TemporalConv
from sdvideo.models.video_unet import VideoUNet


def tiny_unet(seed=0, **overrides):
    torch.manual_seed(seed)
    return UNet2DConditionModel(**{**unet_config("tiny"), **overrides}).eval()


def frame_by_frame(unet2d, x, t, text):
    # The 2-D UNet run on each frame separately: (b, c, f, h, w).
    return torch.stack([unet2d(x[:, :, i], t, text).sample for i in range(x.shape[2])], dim=2)


@pytest.mark.parametrize("frames", [1, 2, 5, 9])
@pytest.mark.parametrize("enable_time", [True, False])
def test_identity_at_init_any_frame_count(frames, enable_time):
    unet = tiny_unet()
    reference = copy.deepcopy(unet)
    video = sdvideo.inflate(unet).eval()
    torch.manual_seed(1)
    x = torch.randn(2, 4, frames, 8, 8)
    t = torch.tensor([10, 700])
    text = torch.randn(2, 7, 32)
    with torch.no_grad():
        out = video(x, t, text, fps=torch.tensor([5.0, 12.0]), enable_time=enable_time).sample
        expected = frame_by_frame(reference, x, t, text)
    assert out.shape == x.shape
    assert (out - expected).abs().max().item() <= 1e-5


@pytest.mark.parametrize(
    "overrides",
    [
        dict(use_linear_projection=True, attention_head_dim=(2, 4)),  # SD 2.x style transformers
        dict(layers_per_block=2, cross_attention_dim=48),
    ],
)
def test_identity_at_init_sd2_style_and_deeper(overrides):
    unet = tiny_unet(**overrides)
    reference = copy.deepcopy(unet)
    video = sdvideo.inflate(unet).eval()
    x = torch.randn(1, 4, 4, 8, 8)
    text = torch.randn(1, 5, unet.config.cross_attention_dim)
    with torch.no_grad():
        diff = (video(x, 3, text).sample - frame_by_frame(reference, x, torch.tensor([3]), text)).abs().max()
    assert diff.item() <= 1e-5


def test_every_resnet_conv_and_transformer_gets_a_temporal_layer():
    unet = tiny_unet()
    resnets = sum(1 for m in unet.modules() if type(m).__name__ == "ResnetBlock2D")
    transformers = sum(1 for m in unet.modules() if type(m).__name__ == "Transformer2DModel")
    video = sdvideo.inflate(unet)
    convs = [m for m in video.modules() if isinstance(m, TemporalConv)]
    attns = [m for m in video.modules() if isinstance(m, TemporalTransformer)]
    assert len(convs) == 2 * resnets and len(attns) == transformers > 0
    # No cross-attention to text in the temporal layers: only self-attention projections.
    for attn in attns:
        assert not any("to_k" in n or "cross" in n for n, _ in attn.named_parameters())


def test_temporal_layers_mix_frames_once_trained():
    video = sdvideo.inflate(tiny_unet()).eval()
    for p in video.temporal_parameters():
        torch.nn.init.normal_(p, std=0.05)
    x = torch.randn(1, 4, 5, 8, 8)
    text = torch.randn(1, 7, 32)
    with torch.no_grad():
        base = video(x, 5, text).sample
        x2 = x.clone()
        x2[:, :, 4] += 1.0  # change only the last frame
        changed = video(x2, 5, text).sample
        independent = video(x2, 5, text, enable_time=False).sample
        independent_base = video(x, 5, text, enable_time=False).sample
    assert (changed[:, :, 0] - base[:, :, 0]).abs().max() > 1e-4  # frame 0 sees frame 4
    assert torch.equal(independent[:, :, 0], independent_base[:, :, 0])  # not without time
    # fps conditioning changes the output once its embedding is trained.
    with torch.no_grad():
        assert (video(x, 5, text, fps=4.0).sample - video(x, 5, text, fps=24.0).sample).abs().max() > 1e-5


def test_samples_more_frames_than_any_fixed_table():
    video = sdvideo.inflate(tiny_unet()).eval()
    x = torch.randn(1, 4, 40, 4, 4)  # past AnimateDiff's 32-frame limit
    with torch.no_grad():
        assert video(x, 1, torch.randn(1, 3, 32)).sample.shape == x.shape


def test_freeze_spatial_leaves_only_temporal_trainable():
    video = sdvideo.inflate(tiny_unet()).freeze_spatial()
    trainable = {n for n, p in video.named_parameters() if p.requires_grad}
    assert trainable and all(".temporal." in n or "fps_embedding" in n for n in trainable)
    summary = video.parameter_summary()
    assert summary["trainable"] == summary["temporal"] > 0
    assert summary["frozen"] == summary["spatial"]
    assert summary["total"] == summary["trainable"] + summary["frozen"]
    text = video.format_parameter_summary()
    assert "trainable" in text and "frozen" in text
    # Gradients reach only temporal parameters.
    video(torch.randn(1, 4, 3, 8, 8), 3, torch.randn(1, 7, 32), fps=8).sample.square().mean().backward()
    for n, p in video.named_parameters():
        assert (p.grad is not None) == p.requires_grad, n


def test_sd15_size_parameter_counts():
    with torch.device("meta"):
        video = VideoUNet(unet_config=unet_config("sd15"))
    s = video.parameter_summary()
    assert s["spatial"] == 859_520_964  # Stable Diffusion 1.5's UNet
    assert 200e6 <= s["temporal"] <= 300e6  # the write-up's ~1.1 B in total


def test_save_load_round_trip(tmp_path):
    video = sdvideo.inflate(tiny_unet(), temporal_ff_mult=1, fps_conditioning=True).eval()
    for p in video.temporal_parameters():
        torch.nn.init.normal_(p, std=0.05)
    video.save_pretrained(tmp_path)
    assert (tmp_path / "config.json").exists() and (tmp_path / "diffusion_pytorch_model.safetensors").exists()
    loaded = VideoUNet.from_pretrained(tmp_path).eval()
    assert loaded.config.temporal_ff_mult == 1
    x, text = torch.randn(1, 4, 3, 8, 8), torch.randn(1, 7, 32)
    with torch.no_grad():
        assert torch.equal(loaded(x, 9, text, fps=6).sample, video(x, 9, text, fps=6).sample)


def test_spatial_weights_swap_under_trained_temporal_layers():
    original = tiny_unet(seed=0)
    plain_names = copy.deepcopy(original).state_dict()
    video = sdvideo.inflate(original)
    exported = video.spatial_state_dict()
    assert set(exported) == set(plain_names)
    assert all(torch.equal(exported[k], plain_names[k]) for k in plain_names)
    other = tiny_unet(seed=3).state_dict()
    video.load_spatial_state_dict(other)
    assert all(torch.equal(video.spatial_state_dict()[k], other[k]) for k in other)
    with pytest.raises(ValueError, match="do not match"):
        video.load_spatial_state_dict({"nope": torch.zeros(1)})


def test_inflate_rejects_non_unet():
    with pytest.raises(TypeError, match="UNet2DConditionModel"):
        sdvideo.inflate(torch.nn.Linear(2, 2))


def test_gradient_checkpointing_matches_plain():
    video = sdvideo.inflate(tiny_unet()).train()
    for p in video.temporal_parameters():
        torch.nn.init.normal_(p, std=0.05)
    x, text = torch.randn(1, 4, 3, 8, 8), torch.randn(1, 7, 32)
    plain = video(x, 9, text).sample
    video.enable_gradient_checkpointing()
    checkpointed = video(x, 9, text).sample
    assert torch.allclose(plain, checkpointed, atol=1e-6)
