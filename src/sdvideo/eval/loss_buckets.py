"""Held-out denoising loss by timestep bucket, for several models on exactly the same noise.

The training timesteps [0, N) are cut into `buckets` equal ranges; each bucket is measured at
`per_bucket` evenly spaced timesteps inside it, with every noise seed of `seeds`. Every model sees
the same clips, the same timesteps and the same noise, so

- video (temporal layers on) vs independent (same weights, temporal layers off) isolates what the
  temporal layers add; with identity-initialised temporal layers the two are exactly equal;
- independent vs base (the run's base image UNet applied frame by frame) shows what training did
  to the spatial weights (equal when only the temporal layers trained);
- video on the clips with their frames shuffled (`shuffled_frames`) against video on the clips in
  order: a model that uses motion gets worse when the order is broken, a frame-wise one does not.

Differences between two models are paired by clip: each clip's loss (averaged over seeds and the
bucket's timesteps) under one model minus under the other, with a bootstrap confidence interval
over clips. Beside the objective (the noise for SD 1.x), the error of the clean latents it implies
(x0) is reported: the objective magnifies small content errors at low noise.
"""

from __future__ import annotations

import functools
from typing import Any, Sequence

import numpy as np
import torch
from diffusers import DDPMScheduler, UNet2DConditionModel

from ..noise_prior import NoisePrior
from ..training.validation import Predictor, fixed_noise_errors

BOOTSTRAP_RESAMPLES = 2000


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


def frame_shuffle(frames: int, seed: int = 0) -> torch.Tensor:
    """A fixed permutation of `frames` frame indices that moves every frame (frames >= 2)."""
    gen = torch.Generator().manual_seed(seed)
    while True:
        order = torch.randperm(frames, generator=gen)
        if frames < 2 or bool((order != torch.arange(frames)).all()):
            return order


def shuffled_frames(predict: Predictor, frames: int, seed: int = 0) -> Predictor:
    """`predict` on clips whose frames come in a fixed shuffled order: the noisy clip is shuffled before
    the model sees it and its prediction put back in order, which is the same as measuring the
    shuffled clips with the same (shuffled) noise."""
    order = frame_shuffle(frames, seed)
    back = torch.argsort(order)

    def predict_shuffled(x: torch.Tensor, t: torch.Tensor, text: torch.Tensor, fps: torch.Tensor) -> torch.Tensor:
        out = predict(x[:, :, order.to(x.device)], t, text, fps)
        return out[:, :, back.to(x.device)]

    return predict_shuffled


def bootstrap_interval(values: np.ndarray, confidence: float = 0.95, seed: int = 0) -> list[float]:
    """Percentile bootstrap interval of the mean of `values` (n,) over resampled clips."""
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), (BOOTSTRAP_RESAMPLES, len(values)))].mean(1)
    tail = (1 - confidence) / 2 * 100
    return [float(np.percentile(means, tail)), float(np.percentile(means, 100 - tail))]


def paired_difference(a: np.ndarray, b: np.ndarray, confidence: float = 0.95) -> dict[str, Any]:
    """Loss of model a minus model b, per clip (n, buckets) each: per bucket and over the bucket mean,
    with bootstrap intervals, and relative to b's mean (negative: a is lower)."""
    diff = a - b  # (n, buckets)
    overall = diff.mean(1)
    return dict(
        buckets=diff.mean(0).tolist(),
        buckets_ci=[bootstrap_interval(diff[:, k], confidence) for k in range(diff.shape[1])],
        mean=float(overall.mean()), mean_ci=bootstrap_interval(overall, confidence),
        relative=float(overall.mean() / b.mean()), confidence=confidence,
        lower_in_every_bucket=bool((diff.mean(0) < 0).all()),
    )


@torch.no_grad()
def bucket_losses(
    predictors: dict[str, Predictor],
    scheduler: DDPMScheduler,
    latents: torch.Tensor,
    text: torch.Tensor,
    fps: torch.Tensor,
    buckets: int = 5,
    per_bucket: int = 2,
    seeds: Sequence[int] = (1234,),
    batch_size: int = 4,
    device: torch.device | str = "cpu",
    autocast: bool = False,
    compare: Sequence[tuple[str, str]] = (),
    noise_prior: NoisePrior | None = None,
) -> dict[str, Any]:
    """Loss per bucket for each predictor on the clips latents (n, c, f, h, w), text (n, 77, d), fps (n,).

    Returns {"buckets": [[lo, hi), ...], "timesteps", "clips", "seeds", "<name>": [loss per bucket],
    "<name>/mean", "<name>/x0": [clean-latent error per bucket], "<name>/x0_mean", "per_clip":
    {name: (n, buckets) list}, "differences": {"a vs b": paired_difference} for each (a, b) of `compare`}.
    """
    device = torch.device(device)
    n_train = int(scheduler.config.num_train_timesteps)
    steps = bucket_timesteps(n_train, buckets, per_bucket)
    width = n_train / buckets
    flat = [t for b in steps for t in b]
    result: dict[str, Any] = {
        "buckets": [[int(b * width), int((b + 1) * width)] for b in range(buckets)],
        "timesteps": steps, "clips": int(latents.shape[0]), "seeds": list(seeds), "seed": int(seeds[0]),
        "per_clip": {}, "differences": {},
    }
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    mixed = functools.partial(torch.autocast, device.type, dtype=dtype) if autocast else None
    per_clip: dict[str, np.ndarray] = {}
    for name, predict in predictors.items():
        objective = torch.zeros(len(flat), latents.shape[0])
        clean = torch.zeros(len(flat), latents.shape[0])
        for seed in seeds:
            o, c = fixed_noise_errors(predict, scheduler, latents, text, fps, flat, seed, batch_size, device, mixed,
                                      noise_prior)
            objective += o / len(seeds)
            clean += c / len(seeds)
        # (timesteps, n) -> (n, buckets): each clip's error averaged over a bucket's timesteps
        clip_buckets = objective.view(buckets, per_bucket, -1).mean(1).T.numpy().astype(np.float64)
        clip_x0 = clean.view(buckets, per_bucket, -1).mean(1).T.numpy().astype(np.float64)
        per_clip[name] = clip_buckets
        result[name] = clip_buckets.mean(0).tolist()
        result[f"{name}/mean"] = float(clip_buckets.mean())
        result[f"{name}/x0"] = clip_x0.mean(0).tolist()
        result[f"{name}/x0_mean"] = float(clip_x0.mean())
        result["per_clip"][name] = clip_buckets.tolist()
    for a, b in compare:
        if a in per_clip and b in per_clip:
            result["differences"][f"{a} vs {b}"] = paired_difference(per_clip[a], per_clip[b])
    return result
