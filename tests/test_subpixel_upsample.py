"""Nearest 2x upsampling + 3 x 3 convolution as four 2 x 2 convolutions (fast/subpixel_upsample.py)."""

import copy

import pytest
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, UNet2DConditionModel
from diffusers.models.upsampling import Upsample2D

from sdvideo.models.lean_conv import make_convs_lean
from sdvideo.models.presets import preset
from sdvideo.fast.subpixel_upsample import (
    SubpixelUpsample2D,
    install_subpixel_upsamplers,
    phase_weights,
    upsample_nearest_conv3x3,
)
from sdvideo.models.video_unet import inflate

pytestmark = pytest.mark.usefixtures("one_thread")


def interpolate_then_conv(x: torch.Tensor, conv: torch.nn.Conv2d) -> torch.Tensor:
    return F.conv2d(F.interpolate(x, scale_factor=2.0, mode="nearest"), conv.weight, conv.bias, padding=1)


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("shape", [(2, 6, 5, 7), (3, 16, 8, 8), (1, 4, 1, 3)])
def test_matches_interpolate_then_conv_with_gradients(shape, channels_last) -> None:
    torch.manual_seed(0)
    n, c, h, w = shape
    conv = torch.nn.Conv2d(c, 2 * c, 3, padding=1)
    x = torch.randn(shape)
    if channels_last:
        x, conv = x.to(memory_format=torch.channels_last), conv.to(memory_format=torch.channels_last)
    xa, xb = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    out, ref = upsample_nearest_conv3x3(xa, conv), interpolate_then_conv(xb, conv)
    assert out.shape == (n, 2 * c, 2 * h, 2 * w)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    grad = torch.randn_like(ref)
    ga = torch.autograd.grad(out, [xa, conv.weight, conv.bias], grad)
    gb = torch.autograd.grad(ref, [xb, conv.weight, conv.bias], grad)
    for a, b in zip(ga, gb):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    if channels_last and h > 1:  # the layout the caller gave comes back (the next conv needs no conversion)
        assert out.is_contiguous(memory_format=torch.channels_last) and not out.is_contiguous()
    elif not channels_last:
        assert out.is_contiguous()


def test_inference_path_matches_autograd_path() -> None:
    # No autograd: one strided view and one copy; with autograd: slices and stacks. Same numbers.
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(8, 8, 3, padding=1).to(memory_format=torch.channels_last)
    x = torch.randn(2, 8, 6, 9).to(memory_format=torch.channels_last)
    with torch.no_grad():
        strided = upsample_nearest_conv3x3(x, conv)
    stacked = upsample_nearest_conv3x3(x, conv)  # conv.weight requires grad: the autograd path
    assert stacked.requires_grad
    assert torch.equal(strided, stacked.detach())


def test_phase_weights_sum_the_taps_each_phase_sees() -> None:
    weight = torch.arange(9.0).view(1, 1, 3, 3)  # rows [0 1 2], [3 4 5], [6 7 8]
    phases = phase_weights(weight).view(2, 2, 2, 2)  # (a, b, kernel row, kernel column)
    # phase (0, 0): input rows (i - 1, i) get kernel rows (0, 1 + 2); columns likewise.
    assert phases[0, 0].tolist() == [[0.0, 1 + 2], [3 + 6, 4 + 5 + 7 + 8]]
    # phase (1, 1): input rows (i, i + 1) get kernel rows (0 + 1, 2).
    assert phases[1, 1].tolist() == [[0 + 1 + 3 + 4, 2 + 5], [6 + 7, 8]]
    assert phases.sum().item() == 4 * weight.sum().item()


def test_module_switch_keeps_state_and_handles_other_forms() -> None:
    torch.manual_seed(0)
    plain = Upsample2D(4, use_conv=True)
    switched = copy.deepcopy(plain)
    assert install_subpixel_upsamplers(switched) == 1
    assert type(switched) is SubpixelUpsample2D
    assert switched.state_dict().keys() == plain.state_dict().keys()
    x = torch.randn(2, 4, 5, 6)
    with torch.no_grad():
        torch.testing.assert_close(switched(x), plain(x), rtol=1e-5, atol=1e-5)
        # An explicit output size other than 2x (diffusers' odd-latent case) runs diffusers' code.
        assert torch.equal(switched(x, output_size=(9, 11)), plain(x, output_size=(9, 11)))
        torch.testing.assert_close(switched(x, output_size=(10, 12)), plain(x, output_size=(10, 12)), rtol=1e-5, atol=1e-5)
        square = torch.randn(1, 4, 3, 3)
        # an int size, as F.interpolate reads it (diffusers' own forward cannot take one)
        torch.testing.assert_close(switched(square, output_size=6), interpolate_then_conv(square, plain.conv),
                                   rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="expects 4 channels, got 3"):
        switched(torch.randn(1, 3, 4, 4))
    others = torch.nn.ModuleList([
        Upsample2D(4, use_conv=False),  # interpolation only
        Upsample2D(4, use_conv_transpose=True),
        Upsample2D(4, use_conv=True, kernel_size=1, padding=0),
        Upsample2D(4, use_conv=True, norm_type="ln_norm", eps=1e-5, elementwise_affine=True),
    ])
    assert install_subpixel_upsamplers(others) == 0
    assert all(type(m) is Upsample2D for m in others)


def test_frozen_phase_weights_follow_in_place_weight_changes() -> None:
    torch.manual_seed(0)
    up = Upsample2D(4, use_conv=True).requires_grad_(False)
    reference = copy.deepcopy(up)
    install_subpixel_upsamplers(up)
    x = torch.randn(1, 4, 3, 3)
    up(x)  # fills the cache
    for module in (up, reference):
        with torch.no_grad():
            module.conv.weight.mul_(-2.0)  # a new version of the same storage
    torch.testing.assert_close(up(x), reference(x), rtol=1e-5, atol=1e-5)
    up.conv.weight.data = torch.randn_like(up.conv.weight)  # a new storage
    reference.conv.weight.data = up.conv.weight.data.clone()
    torch.testing.assert_close(up(x), reference(x), rtol=1e-5, atol=1e-5)


def test_lean_frozen_conv_keeps_its_backward() -> None:
    # A frozen LeanConv2d stores no activation; through the 2 x 2 path its input gradient still matches.
    torch.manual_seed(0)
    up = Upsample2D(6, use_conv=True).requires_grad_(False)
    make_convs_lean(up)
    reference = copy.deepcopy(up)
    install_subpixel_upsamplers(up)
    x = torch.randn(2, 6, 4, 5)
    xa, xb = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    grad = torch.randn(2, 6, 8, 10)
    (ga,) = torch.autograd.grad(up(xa), xa, grad)
    (gb,) = torch.autograd.grad(reference(xb), xb, grad)
    torch.testing.assert_close(ga, gb, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("trainable", [False, True])  # frozen (the temporal-only default) or `--train all`
@pytest.mark.parametrize("form", ["matmul", "conv"])
def test_compiled_matches_eager(form, trainable) -> None:
    torch._dynamo.reset()
    torch.manual_seed(0)
    up = Upsample2D(8, use_conv=True).requires_grad_(trainable).to(memory_format=torch.channels_last)
    install_subpixel_upsamplers(up, form)
    assert up.form == form
    twin = copy.deepcopy(up)
    compiled = torch.compile(twin, backend="aot_eager", dynamic=False)
    x = torch.randn(2, 8, 4, 6).to(memory_format=torch.channels_last)
    xa, xb = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    out, ref = compiled(xa), up(xb)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    grad = torch.randn_like(ref)
    inputs = lambda module, x: [x, *([module.conv.weight, module.conv.bias] if trainable else [])]  # noqa: E731
    for a, b in zip(torch.autograd.grad(out, inputs(twin, xa), grad), torch.autograd.grad(ref, inputs(up, xb), grad)):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_video_unet_and_pipeline_vae_use_it_once_enabled() -> None:
    from sdvideo.sampling.pipeline import VideoPipeline

    torch.manual_seed(0)
    unet = UNet2DConditionModel(**preset("tiny")["unet"])
    reference = copy.deepcopy(unet)
    video = inflate(unet)
    upsamplers = [m for m in video.modules() if isinstance(m, Upsample2D)]
    assert upsamplers and all(type(m) is Upsample2D for m in upsamplers)  # inflate switches nothing
    vae = AutoencoderKL(**preset("tiny")["vae"])
    plain_vae = copy.deepcopy(vae)
    pipe = VideoPipeline(vae=vae, text_encoder=None, tokenizer=None, unet=video, scheduler=None)
    assert pipe.vae is vae
    assert pipe.enable_fast_inference() is pipe
    assert all(type(m) is SubpixelUpsample2D for m in upsamplers)
    assert not any(type(m) is SubpixelUpsample2D for m in reference.modules())
    decoder_upsamplers = [m for m in pipe.vae.decoder.modules() if isinstance(m, Upsample2D)]  # the pipeline's copy
    assert decoder_upsamplers and all(type(m) is SubpixelUpsample2D for m in decoder_upsamplers)
    latents = torch.randn(2, vae.config.latent_channels, 4, 4)
    with torch.no_grad():
        torch.testing.assert_close(pipe.vae.decode(latents).sample, plain_vae.decode(latents).sample,
                                   rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("channels_last", [False, True])
def test_matmul_form_matches_interpolate_then_conv(channels_last) -> None:
    from sdvideo.fast.subpixel_upsample import phases_as_matmul

    torch.manual_seed(0)
    conv = torch.nn.Conv2d(6, 10, 3, padding=1)
    x = torch.randn(2, 6, 5, 3)
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    out = phases_as_matmul(x, phase_weights(conv.weight), conv.bias)
    assert out.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out, interpolate_then_conv(x, conv), rtol=1e-5, atol=1e-5)


def test_auto_form_picks_the_matmul_for_wide_maps_of_many_channels() -> None:
    from sdvideo.fast.subpixel_upsample import compiled_form

    assert compiled_form(torch.empty(1, 1280, 16, 16)) == "matmul"  # SD 1.5's second upsampler at 512 px
    assert compiled_form(torch.empty(1, 1280, 8, 8)) == "conv"
    assert compiled_form(torch.empty(1, 640, 32, 32)) == "conv"
    assert compiled_form(torch.empty(1, 640, 32, 32), "matmul") == "matmul"  # a form chosen at install
