"""Classifier-free-guided video sampling with any diffusers scheduler, and sliced VAE decoding.

`denoise_video` is the denoising loop shared by `VideoPipeline` and the demo: optional sliding
windows (`windows.py`) and known frames (`conditioning.py`, masked channels or replacement).
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Iterable, Sequence

import diffusers
import torch
from diffusers import (
    DDIMScheduler,
    DDPMScheduler,
    DEISMultistepScheduler,
    DPMSolverMultistepScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    HeunDiscreteScheduler,
    PNDMScheduler,
    UniPCMultistepScheduler,
)
from diffusers import AutoencoderKL
from tqdm.auto import tqdm

from ..models.video_unet import VideoUNet
from ..noise_prior import NoisePrior, video_noise
from .conditioning import FrameCondition, resolve_method
from .cuda_graphs import GraphedUNet
from .windows import windowed_prediction

SCHEDULERS: dict[str, tuple[type, dict[str, Any]]] = {
    "ddim": (DDIMScheduler, {}),
    "ddpm": (DDPMScheduler, {}),
    "dpm++": (DPMSolverMultistepScheduler, dict(algorithm_type="dpmsolver++", solver_order=2)),
    "dpm++-karras": (DPMSolverMultistepScheduler, dict(algorithm_type="dpmsolver++", use_karras_sigmas=True)),
    "dpm++-sde": (DPMSolverMultistepScheduler, dict(algorithm_type="sde-dpmsolver++", solver_order=2)),
    "euler": (EulerDiscreteScheduler, {}),
    "euler-a": (EulerAncestralDiscreteScheduler, {}),
    "heun": (HeunDiscreteScheduler, {}),
    "pndm": (PNDMScheduler, dict(skip_prk_steps=True)),
    "unipc": (UniPCMultistepScheduler, {}),
    "deis": (DEISMultistepScheduler, {}),
}

Generators = torch.Generator | Sequence[torch.Generator] | None


def make_scheduler(name: str, base_scheduler_config: dict[str, Any]):
    """A diffusers scheduler by short name (`SCHEDULERS`) or class name (e.g. "LMSDiscreteScheduler"),
    configured with the base model's noise schedule (betas, prediction type)."""
    if name in SCHEDULERS:
        cls, extra = SCHEDULERS[name]
        return cls.from_config(dict(base_scheduler_config), **extra)
    cls = getattr(diffusers, name, None) if name.endswith("Scheduler") else None
    if cls is None or not hasattr(cls, "from_config"):
        raise ValueError(f"unknown scheduler {name!r}; choose one of {', '.join(SCHEDULERS)} or a diffusers "
                         "scheduler class name")
    return cls.from_config(dict(base_scheduler_config))


def initial_noise(shape: Sequence[int], generator: Generators, device: torch.device, dtype: torch.dtype,
                  prior: NoisePrior | None = None) -> torch.Tensor:
    """Noise of `prior` (default independent per frame; float32 on the generator's device, then cast);
    one generator per video when a list is given, so a video does not depend on the rest of its batch."""
    if isinstance(generator, (list, tuple)):
        if len(generator) != shape[0]:
            raise ValueError(f"{len(generator)} generators for a batch of {shape[0]}")
        return torch.cat([initial_noise((1, *shape[1:]), g, device, dtype, prior) for g in generator])
    where = generator.device if generator is not None else "cpu"
    return video_noise(shape, prior or NoisePrior(), generator, where).to(device, dtype)


def _step_kwargs(scheduler: Any, generator: Generators, eta: float) -> dict[str, Any]:
    params = set(inspect.signature(scheduler.step).parameters)
    kwargs: dict[str, Any] = {}
    if "generator" in params and generator is not None:
        kwargs["generator"] = list(generator) if isinstance(generator, (list, tuple)) else generator
    if "eta" in params:
        kwargs["eta"] = eta
    return kwargs


def adds_noise_per_step(scheduler: Any, eta: float) -> bool:
    """Whether `scheduler.step` adds fresh noise that the caller can supply (`variance_noise`): DDIM with eta > 0
    and the SDE variants of DPM-Solver. (Euler ancestral and DDPM draw theirs inside, independently per frame.)"""
    params = inspect.signature(scheduler.step).parameters
    if "variance_noise" not in params:
        return False
    if "eta" in params:
        return eta > 0
    return "sde" in str(getattr(scheduler.config, "algorithm_type", ""))


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
    generator: Generators = None,
    enable_time: bool = True,
    progress: bool | Callable[[Iterable], Iterable] = True,
    *,
    latents: torch.Tensor | None = None,
    window: int | None = None,
    overlap: int | None = None,
    shift_windows: bool = True,
    condition: FrameCondition | None = None,
    condition_method: str = "auto",
    eta: float = 0.0,
    graphs: GraphedUNet | None = None,
    noise_prior: NoisePrior | None = None,
) -> torch.Tensor:
    """Run the reverse diffusion: returns clean latents (batch, channels, frames, h, w).

    text / negative_text: (batch, tokens, dim) prompt and negative-prompt embeddings. With
    guidance_scale > 1 both go through the UNet in one batch and the prediction is
    uncond + scale * (cond - uncond). `frames` may exceed the frames the model was trained with.
    latents: starting noise (batch, c, frames, h, w) instead of drawing it from `generator`.
    window / overlap: sliding temporal windows (`windows.py`); None: the UNet sees all frames.
    shift_windows: shift the windows' tiling with the step (`windows.step_shift`), so that no frame is
    always at a window's edge; False: one fixed tiling.
    condition: known frames (`conditioning.py`), kept by `condition_method` ("auto", "mask", "replace").
    progress: show a tqdm bar, or a callable wrapping the timesteps (e.g. a pipeline's `progress_bar`).
    graphs: call `unet` through these CUDA graphs (`cuda_graphs.py`; kept across calls by the caller).
    noise_prior: how the frames' noise is related (`noise_prior.py`; default independent): the starting noise's,
    and the noise that DDIM with eta > 0 or DPM++ SDE adds at each step.
    eta: DDIM's stochasticity (0: deterministic; 1: as much fresh noise per step as DDPM).
    """
    param = next(unet.parameters())
    device, dtype = param.device, param.dtype
    b = text.shape[0]
    h, w = latent_size
    shape = (b, unet.unet.config.in_channels, frames, h, w)
    if latents is None:
        latents = initial_noise(shape, generator, device, dtype, noise_prior)
    elif tuple(latents.shape) != shape:
        raise ValueError(f"latents must be {shape}, got {tuple(latents.shape)}")
    scheduler.set_timesteps(steps, device=device)
    latents = latents.to(device, dtype) * scheduler.init_noise_sigma
    guided = guidance_scale > 1.0
    context = (torch.cat([negative_text, text]) if guided else text).to(device, dtype)
    fps_arg = None if fps is None else torch.full((context.shape[0],), float(fps), device=device)

    method, cond_channels, known_noise = None, None, None
    if condition is not None:
        if condition.frames != frames or tuple(condition.latents.shape[-2:]) != (h, w):
            raise ValueError(f"known frames are {tuple(condition.latents.shape[2:])} latents, sampling "
                             f"{(frames, h, w)}")
        condition = condition.to(device, dtype).expand(b)
        method = resolve_method(condition_method, unet.config.condition_channels)
        if method == "mask":
            cond_channels = condition.channels()  # (b, c + 1, f, h, w)
            cond_channels = torch.cat([cond_channels, cond_channels]) if guided else cond_channels
        known_noise = initial_noise(shape, generator, device, dtype, noise_prior)

    def predict(x: torch.Tensor, t: torch.Tensor, start: int, end: int) -> torch.Tensor:
        x = x[:, :, start:end]  # (b, c, window, h, w), already scaled for the scheduler
        model_in = torch.cat([x, x]) if guided else x
        extra = None if cond_channels is None else cond_channels[:, :, start:end]
        # guided: both halves are the same latents and conditioning, so the layers before the text run once
        inputs = dict(fps=fps_arg, enable_time=enable_time, conditioning=extra, guidance_pair=guided)
        pred = graphs(model_in, t, context, **inputs) if graphs is not None else unet(model_in, t, context, **inputs).sample
        if guided:
            uncond, cond = pred.chunk(2)
            pred = uncond + guidance_scale * (cond - uncond)
        return pred

    step_kwargs = _step_kwargs(scheduler, generator, eta)
    # A stochastic step's fresh noise comes from the noise prior too, so that what the frames share at the start
    # stays shared; the scheduler's own draw would be independent per frame (flicker).
    per_step_noise = adds_noise_per_step(scheduler, eta)
    if per_step_noise:
        step_kwargs.pop("generator", None)  # DDIM refuses a generator beside variance_noise
    timesteps = scheduler.timesteps
    bar = progress(timesteps) if callable(progress) else tqdm(timesteps, desc="sample", disable=not progress, leave=False)
    for i, t in enumerate(bar):
        if method == "replace":
            latents = condition.replace_known(latents, known_noise, scheduler, t)
        scaled = scheduler.scale_model_input(latents, t)
        pred = windowed_prediction(lambda s, e: predict(scaled, t, s, e), frames, window, overlap,
                                   step=i if shift_windows else None)
        if per_step_noise:
            step_kwargs["variance_noise"] = initial_noise(shape, generator, device, dtype, noise_prior)
        latents = scheduler.step(pred, t, latents, **step_kwargs).prev_sample
    if condition is not None:
        latents = condition.replace_known(latents, known_noise, scheduler, None)  # known frames exact
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
