"""`inflate` and `VideoPipeline` leave the models they are given usable as they were, sharing their weights."""

import copy

import pytest
import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from diffusers.models.upsampling import Upsample2D

from sdvideo.models.presets import preset
from sdvideo.models.shared_copy import shared_parameter_copy
from sdvideo.fast.subpixel_upsample import SubpixelUpsample2D, with_subpixel_upsamplers
from sdvideo.models.video_unet import inflate

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_unet() -> UNet2DConditionModel:
    torch.manual_seed(0)
    return UNet2DConditionModel(**preset("tiny")["unet"]).eval()


def tiny_vae() -> AutoencoderKL:
    torch.manual_seed(0)
    return AutoencoderKL(**preset("tiny")["vae"]).eval()


def module_types(model: torch.nn.Module) -> dict[str, type]:
    return {name: type(module) for name, module in model.named_modules()}


@pytest.mark.parametrize("options", [{}, dict(condition_channels=5)])
def test_unet_computes_the_same_after_inflate(options) -> None:
    unet = tiny_unet()
    types = module_types(unet)
    torch.manual_seed(1)
    images, t, text = torch.randn(2, 4, 8, 8), torch.tensor([10, 700]), torch.randn(2, 7, 32)
    with torch.no_grad():
        before = unet(images, t, text).sample
    video = inflate(unet, **options).eval()
    with torch.no_grad():
        video(torch.randn(1, 4, 3, 8, 8), 5, text[:1], fps=8.0)  # the video model's frame context: 3 frames
        after = unet(images, t, text).sample
    assert torch.equal(after, before)
    assert module_types(unet) == types  # nothing wrapped or re-classed
    assert not {id(m) for m in unet.modules()} & {id(m) for m in video.unet.modules()}


def test_inflated_model_shares_the_input_weights() -> None:
    unet = tiny_unet()
    video = inflate(unet)
    spatial = video.spatial_state_dict()
    params = dict(unet.named_parameters())
    assert params and set(params) <= set(spatial)
    for name, param in params.items():
        assert spatial[name] is param and spatial[name].data_ptr() == param.data_ptr()
    # No second copy of the image model: only the new temporal layers add parameters.
    spatial_ids = {id(p) for p in video.parameters()} - {id(p) for p in video.temporal_parameters()}
    assert spatial_ids == {id(p) for p in unet.parameters()}
    # A change to the video model's spatial weights is a change to the image model's.
    with torch.no_grad():
        video.unet.conv_in.weight.add_(1.0)
    assert torch.equal(unet.conv_in.weight, video.unet.conv_in.weight)


def test_shared_parameter_copy_shares_parameters_and_buffers_only() -> None:
    model = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3), torch.nn.BatchNorm2d(3))
    copied = shared_parameter_copy(model)
    assert copied is not model and all(a is not b for a, b in zip(copied.modules(), model.modules()))
    assert all(a is b for a, b in zip(copied.parameters(), model.parameters()))
    assert all(a is b for a, b in zip(copied.buffers(), model.buffers()))


def test_pipeline_leaves_the_given_vae_plain() -> None:
    from sdvideo.sampling.pipeline import VideoPipeline

    vae = tiny_vae()
    types = module_types(vae)
    torch.manual_seed(2)
    latents = torch.randn(2, vae.config.latent_channels, 4, 4)
    with torch.no_grad():
        before = vae.decode(latents).sample
    pipe = VideoPipeline(vae=vae, text_encoder=None, tokenizer=None, unet=inflate(tiny_unet()), scheduler=None)
    pipe.enable_fast_inference()
    with torch.no_grad():
        after = vae.decode(latents).sample
        piped = pipe.vae.decode(latents).sample
    assert torch.equal(after, before)
    assert module_types(vae) == types
    # The pipeline's own VAE takes the subpixel path, on the very same weights.
    upsamplers = [m for m in pipe.vae.decoder.modules() if isinstance(m, Upsample2D)]
    assert upsamplers and all(type(m) is SubpixelUpsample2D for m in upsamplers)
    assert all(a is b for a, b in zip(pipe.vae.parameters(), vae.parameters()))
    torch.testing.assert_close(piped, before, rtol=1e-4, atol=1e-4)


def test_with_subpixel_upsamplers_returns_a_switched_model_as_is() -> None:
    switched = with_subpixel_upsamplers(tiny_vae())
    assert with_subpixel_upsamplers(switched) is switched
    plain = copy.deepcopy(tiny_unet().conv_in)
    assert with_subpixel_upsamplers(plain) is plain  # nothing to switch: no copy
