"""Classifier-free-guided video sampling with any diffusers scheduler, and sliced VAE decoding."""

from __future__ import annotations

import torch
from diffusers import AutoencoderKL
from tqdm.auto import tqdm

from ..models.video_unet import VideoUNet


@torch.no_grad()
def denoise_video(
    unet: VideoUNet,
    scheduler,
    text: torch.Tensor,
    negative_text: torch.Tensor,
    frames: int,
    latent_size: tuple[int, int],
    steps: int = 25,
    guidance_scale: float = 7.5,
    fps: float | None = None,
    generator: torch.Generator | None = None,
    enable_time: bool = True,
    progress: bool = True,
) -> torch.Tensor:
    """Run the reverse diffusion: returns clean latents (batch, channels, frames, h, w).

    text / negative_text: (batch, tokens, dim) prompt and negative-prompt embeddings. With
    guidance_scale > 1 both go through the UNet in one batch and the prediction is
    uncond + scale * (cond - uncond). `frames` may exceed the frames the model was trained with.
    """
    param = next(unet.parameters())
    device, dtype = param.device, param.dtype
    b = text.shape[0]
    h, w = latent_size
    shape = (b, unet.unet.config.in_channels, frames, h, w)
    latents = torch.randn(shape, generator=generator, device=generator.device if generator else "cpu")
    latents = latents.to(device, dtype) * scheduler.init_noise_sigma
    scheduler.set_timesteps(steps, device=device)
    guided = guidance_scale > 1.0
    context = torch.cat([negative_text, text]) if guided else text
    context = context.to(device, dtype)
    fps_arg = None if fps is None else torch.full((context.shape[0],), float(fps), device=device)
    for t in tqdm(scheduler.timesteps, desc="sample", disable=not progress, leave=False):
        model_in = torch.cat([latents, latents]) if guided else latents
        model_in = scheduler.scale_model_input(model_in, t)
        pred = unet(model_in, t, context, fps=fps_arg, enable_time=enable_time).sample
        if guided:
            uncond, cond = pred.chunk(2)
            pred = uncond + guidance_scale * (cond - uncond)
        latents = scheduler.step(pred, t, latents).prev_sample
    return latents


@torch.no_grad()
def decode_latents(vae: AutoencoderKL, latents: torch.Tensor, frames_per_slice: int = 8) -> torch.Tensor:
    """(batch, c, frames, h, w) latents -> (batch, frames, 3, H, W) float frames in [0, 1].

    The VAE decodes a slice of frames at a time, so decoding memory does not grow with video length.
    """
    b, c, f, h, w = latents.shape
    flat = latents.transpose(1, 2).reshape(b * f, c, h, w) / vae.config.scaling_factor
    param = next(vae.parameters())
    images = []
    for chunk in flat.split(frames_per_slice):
        images.append(vae.decode(chunk.to(param.device, param.dtype)).sample.float().cpu())
    video = torch.cat(images).clamp(-1, 1).add(1).div(2)  # (b*f, 3, H, W)
    return video.reshape(b, f, *video.shape[1:])
