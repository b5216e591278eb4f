"""Held-out denoising loss by timestep bucket, for several models on exactly the same noise.

The training timesteps [0, N) are cut into `buckets` equal ranges; each bucket is measured at
`per_bucket` evenly spaced timesteps inside it. Every model sees the same clips, the same timesteps
and the same noise (one generator seeded by (seed, timestep, batch) per measurement), so

- video (temporal layers on) vs independent (same weights, temporal layers off) isolates what the
  temporal layers add; with identity-initialised temporal layers the two are exactly equal;
- independent vs base (the run's base image UNet applied frame by frame) shows what training did
  to the spatial weights (equal when only the temporal layers trained).
"""

from __future__ import annotations

import functools

import torch
from diffusers import DDPMScheduler, UNet2DConditionModel

from ..training.validation import Predictor, fixed_noise_losses


def bucket_timesteps(num_train_timesteps: int, buckets: int = 5, per_bucket: int = 2) -> list[list[int]]:
    """`buckets` lists of `per_bucket` timesteps, evenly spaced inside each equal range of [0, N)."""
    if buckets < 1 or per_bucket < 1:
        raise ValueError(f"buckets and per_bucket must be at least 1, got {buckets} and {per_bucket}")
    width = num_train_timesteps / buckets
    return [[int(b * width + (k + 0.5) * width / per_bucket) for k in range(per_bucket)] for b in range(buckets)]


def image_predictor(unet: UNet2DConditionModel) -> Predictor:
    """A 2-D UNet applied to every frame on its own: (b, c, f, h, w) -> (b*f, c, h, w) and back."""

    def predict(x: torch.Tensor, t: torch.Tensor, text: torch.Tensor, fps: torch.Tensor) -> torch.Tensor:
        b, c, f, h, w = x.shape
        frames = x.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w)
        out = unet(frames, t.repeat_interleave(f), text.repeat_interleave(f, dim=0)).sample
        return out.reshape(b, f, c, h, w).permute(0, 2, 1, 3, 4)

    return predict


@torch.no_grad()
def bucket_losses(
    predictors: dict[str, Predictor],
    scheduler: DDPMScheduler,
    latents: torch.Tensor,
    text: torch.Tensor,
    fps: torch.Tensor,
    buckets: int = 5,
    per_bucket: int = 2,
    seed: int = 1234,
    batch_size: int = 4,
    device: torch.device | str = "cpu",
    autocast: bool = False,
) -> dict[str, object]:
    """Loss per bucket for each predictor on the clips latents (n, c, f, h, w), text (n, 77, d), fps (n,).

    Returns {"buckets": [[lo, hi), ...], "timesteps": [[t, ...], ...], "<name>": [loss per bucket],
    "<name>/mean": mean over buckets}.
    """
    device = torch.device(device)
    n_train = int(scheduler.config.num_train_timesteps)
    steps = bucket_timesteps(n_train, buckets, per_bucket)
    width = n_train / buckets
    result: dict[str, object] = {
        "buckets": [[int(b * width), int((b + 1) * width)] for b in range(buckets)],
        "timesteps": steps,
        "clips": int(latents.shape[0]),
        "seed": seed,
    }
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    mixed = functools.partial(torch.autocast, device.type, dtype=dtype) if autocast else None
    for name, predict in predictors.items():
        per_t = fixed_noise_losses(predict, scheduler, latents, text, fps, [t for b in steps for t in b], seed,
                                   batch_size, device, mixed)
        per_bucket_loss = [sum(per_t[i * per_bucket : (i + 1) * per_bucket]) / per_bucket for i in range(buckets)]
        result[name] = per_bucket_loss
        result[f"{name}/mean"] = sum(per_bucket_loss) / len(per_bucket_loss)
    return result
