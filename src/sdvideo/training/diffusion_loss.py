"""The denoising objective, shared by the image and video trainers.

The network never contains the diffusion process: this file noises clean latents with the base
model's schedule and compares the network's prediction with the schedule's target.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler

from ..noise_prior import NoisePrior, video_noise


def training_target(scheduler: DDPMScheduler, latents: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """What the network must predict: the noise (SD 1.x) or the velocity (SD 2.x 768-v)."""
    kind = scheduler.config.prediction_type
    if kind == "epsilon":
        return noise
    if kind == "v_prediction":
        return scheduler.get_velocity(latents, noise, t)
    if kind == "sample":
        return latents
    raise ValueError(f"unsupported prediction_type {kind!r} in the base model's scheduler config")


def predicted_clean_latents(scheduler: DDPMScheduler, noisy: torch.Tensor, prediction: torch.Tensor,
                            t: torch.Tensor) -> torch.Tensor:
    """The clean latents x0 a prediction implies at timesteps t (batch,), whatever the prediction type."""
    kind = scheduler.config.prediction_type
    alphas = scheduler.alphas_cumprod.to(noisy.device)[t].float()
    alphas = alphas.view(-1, *([1] * (noisy.ndim - 1)))  # (b, 1, ...)
    if kind == "epsilon":
        return (noisy - (1 - alphas).sqrt() * prediction) / alphas.sqrt()
    if kind == "v_prediction":
        return alphas.sqrt() * noisy - (1 - alphas).sqrt() * prediction
    if kind == "sample":
        return prediction
    raise ValueError(f"unsupported prediction_type {kind!r} in the base model's scheduler config")


def min_snr_weights(scheduler: DDPMScheduler, timesteps: torch.Tensor, gamma: float) -> torch.Tensor:
    """Min-SNR-gamma loss weights (Hang et al. 2023), (batch,), for the schedule's prediction type."""
    alphas = scheduler.alphas_cumprod.to(timesteps.device)[timesteps]
    snr = alphas / (1 - alphas)
    clipped = snr.clamp(max=gamma)
    if scheduler.config.prediction_type == "v_prediction":
        return clipped / (snr + 1)
    return clipped / snr


def diffusion_loss(
    predict: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    scheduler: DDPMScheduler,
    latents: torch.Tensor,
    generator: torch.Generator | None = None,
    timesteps: torch.Tensor | None = None,
    offset_noise: float = 0.0,
    min_snr_gamma: float | None = None,
    noise_prior: NoisePrior | None = None,
) -> torch.Tensor:
    """Mean squared error of `predict(noisy_latents, t)` against the schedule's target.

    latents: clean latents (batch, channels, frames, h, w) or (batch, channels, h, w), already
    multiplied by the VAE's scaling factor. `timesteps` (batch,) fixes t (validation); otherwise t
    is drawn uniformly from the schedule's training steps. offset_noise adds a per-video,
    per-channel constant to the noise (lets the model change overall brightness); min_snr_gamma
    weights each sample by min(SNR, gamma) / SNR. noise_prior: how the noise of a clip's frames is
    related (`noise_prior.py`; default independent).
    """
    b = latents.shape[0]
    noise = video_noise(latents.shape, noise_prior or NoisePrior(), generator, latents.device, latents.dtype)
    if offset_noise > 0:
        shape = (b, latents.shape[1]) + (1,) * (latents.ndim - 2)
        noise = noise + offset_noise * torch.randn(shape, generator=generator, device=latents.device, dtype=latents.dtype)
    if timesteps is None:
        n = scheduler.config.num_train_timesteps
        timesteps = torch.randint(0, n, (b,), generator=generator, device=latents.device)
    noisy = scheduler.add_noise(latents, noise, timesteps)
    target = training_target(scheduler, latents, noise, timesteps)
    prediction = predict(noisy, timesteps)
    per_sample = F.mse_loss(prediction.float(), target.float(), reduction="none").flatten(1).mean(1)  # (b,)
    if min_snr_gamma:
        per_sample = per_sample * min_snr_weights(scheduler, timesteps, min_snr_gamma)
    return per_sample.mean()
