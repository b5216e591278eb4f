"""Validation loss on held-out clips at fixed timesteps and noise, with and without the temporal layers.

The gap between the video model's loss and the frame-independent loss (same weights, temporal
layers off) is the first sign that the temporal layers learn something about motion.
`fixed_noise_errors` is the measurement itself; `sdvideo eval` uses it too (eval/loss_buckets.py).

Two errors are measured for every clip: the training objective (the mean squared error of the
prediction against the schedule's target: the noise for SD 1.x) and the error of the clean latents
that prediction implies (x0). The objective weighs an x0 error by alpha_bar / (1 - alpha_bar) (about
20 at t = 50, 0.008 at t = 950), so at low noise it magnifies small content errors; x0 errors weigh
every timestep alike.
"""

from __future__ import annotations

import contextlib
import csv
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable, ContextManager, Sequence

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler
from torch.utils.data import Dataset

from ..noise_prior import NoisePrior, video_noise
from .diffusion_loss import predicted_clean_latents, training_target

DEFAULT_TIMESTEPS = (50, 200, 400, 600, 800, 950)

# predict(noisy (b, c, f, h, w), t (b,), text (b, 77, d), fps (b,)) -> (b, c, f, h, w)
Predictor = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def video_predictor(model, enable_time: bool) -> Predictor:
    """A `VideoUNet` with its temporal layers on or off."""
    return lambda x, t, text, fps: model(x, t, text, fps=fps, enable_time=enable_time).sample


def held_out_clips(dataset: Dataset, count: int) -> list[dict[str, Any]]:
    """Up to `count` clips of a dataset spread over all of its videos, deterministically.

    Every video gets a share (round-robin, so a video with few clips is not crowded out by long
    ones), and each video's clips are evenly spaced through it. Fewer than `count` come back only
    when the dataset holds fewer clips; callers say so (`warn_if_fewer`).
    """
    n = len(dataset)
    if n == 0:
        raise ValueError("no held-out clips for validation; lower --val-holdout or add videos")
    by_video: dict[int, list[int]] = defaultdict(list)
    for i in range(n):
        by_video[dataset.locate(i)[0] if hasattr(dataset, "locate") else 0].append(i)
    share = {v: 0 for v in by_video}
    left = min(count, n)
    while left:  # one more clip for every video that has one to spare, in turn
        for v, anchors in by_video.items():
            if left and share[v] < len(anchors):
                share[v] += 1
                left -= 1
    picks = []
    for v, anchors in by_video.items():
        k, m = share[v], len(anchors)
        picks += [anchors[round(j * (m - 1) / max(1, k - 1))] if k > 1 else anchors[(m - 1) // 2] for j in range(k)]
    return [dataset[i] for i in sorted(picks)]


def warn_if_fewer(items: Sequence[Any], asked: int, what: str) -> None:
    """One warning when fewer clips than asked for were measured: a mean over few clips is noisy."""
    if len(items) < asked:
        warnings.warn(f"{what}: measured {len(items)} clips of the {asked} asked for (the data holds no more); "
                      "add videos or hold out a larger share for a steadier figure", stacklevel=2)


def stack_clips(items: Sequence[dict[str, Any]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Dataset items -> latents (n, c, f, h, w), caption embeddings (n, 77, dim), fps (n,)."""
    return (torch.stack([it["latents"] for it in items]), torch.stack([it["text"] for it in items]),
            torch.tensor([float(it["fps"]) for it in items]))


@torch.no_grad()
def fixed_noise_errors(predict: Predictor, scheduler: DDPMScheduler, latents: torch.Tensor, text: torch.Tensor,
                       fps: torch.Tensor, timesteps: Sequence[int], seed: int, batch_size: int,
                       device: torch.device, autocast: Callable[[], ContextManager] | None = None,
                       noise_prior: NoisePrior | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-clip errors (len(timesteps), n) of the objective and of the implied clean latents (x0).

    latents (n, c, f, h, w), text (n, 77, d), fps (n,). The noise of timestep t for the clips
    starting at s comes from a generator seeded with seed + 7919 t + s, so any model measured with
    the same arguments sees exactly the same noise (of `noise_prior`, independent per frame by default).
    """
    prior = noise_prior or NoisePrior()
    objective = torch.zeros(len(timesteps), len(latents))
    clean = torch.zeros(len(timesteps), len(latents))
    for i, t in enumerate(timesteps):
        for s in range(0, len(latents), batch_size):
            lat = latents[s : s + batch_size].to(device)
            txt, rate = text[s : s + batch_size].to(device), fps[s : s + batch_size].to(device)
            gen = torch.Generator(device=device).manual_seed(seed + 7919 * t + s)
            noise = video_noise(lat.shape, prior, gen, device, lat.dtype)
            ts = torch.full((lat.shape[0],), t, device=device, dtype=torch.long)
            noisy = scheduler.add_noise(lat, noise, ts)
            with autocast() if autocast else contextlib.nullcontext():
                prediction = predict(noisy, ts, txt, rate)
            prediction = prediction.float()
            target = training_target(scheduler, lat, noise, ts)
            x0 = predicted_clean_latents(scheduler, noisy, prediction, ts)
            objective[i, s : s + len(lat)] = F.mse_loss(prediction, target, reduction="none").flatten(1).mean(1).cpu()
            clean[i, s : s + len(lat)] = F.mse_loss(x0, lat, reduction="none").flatten(1).mean(1).cpu()
    return objective, clean


class Validator:
    """Holds a fixed set of held-out clips; every call measures the loss on exactly the same noise."""

    def __init__(self, dataset: Dataset, clips: int = 8, timesteps: Sequence[int] = DEFAULT_TIMESTEPS,
                 seed: int = 1234, batch_size: int = 2, name: str = "held-out",
                 noise_prior: NoisePrior | None = None) -> None:
        items = held_out_clips(dataset, clips)
        warn_if_fewer(items, clips, f"validation on {name} clips")
        self.latents, self.text, self.fps = stack_clips(items)
        self.timesteps = list(timesteps)
        self.seed = seed
        self.batch_size = batch_size
        self.noise_prior = noise_prior

    @torch.no_grad()
    def __call__(self, model, scheduler: DDPMScheduler, device: torch.device, autocast=None) -> dict[str, float]:
        """Mean loss per timestep and overall, for `video` and `independent` (temporal layers off), and
        the mean clean-latent (x0) error of each (`video/x0`, `independent/x0`)."""
        was_training = model.training
        model.eval()
        results: dict[str, float] = {}
        for mode, enable_time in (("video", True), ("independent", False)):
            objective, clean = fixed_noise_errors(video_predictor(model, enable_time), scheduler, self.latents,
                                                  self.text, self.fps, self.timesteps, self.seed, self.batch_size,
                                                  device, autocast, self.noise_prior)
            per_t = objective.mean(1).tolist()
            results.update({f"{mode}/t{t}": value for t, value in zip(self.timesteps, per_t)})
            results[mode] = sum(per_t) / len(per_t)
            results[f"{mode}/x0"] = float(clean.mean())
        results["gap"] = results["independent"] - results["video"]
        model.train(was_training)
        return results


def append_validation_rows(path: Path, step: int, scores: dict[str, dict[str, float]]) -> None:
    """Add one row per validated set to RUN/validation.csv (step, set, then every score), the curves
    of held-out, training and unseen clips in one file that needs no TensorBoard to read."""
    first = next(iter(scores.values()))
    columns = ["step", "set", *first]
    new = not path.exists()
    with open(path, "a", newline="") as f:
        writer = csv.writer(f)
        if new:
            writer.writerow(columns)
        for name, values in scores.items():
            writer.writerow([step, name, *(f"{values[c]:.6g}" for c in columns[2:])])


def trim_validation_rows(path: Path, step: int) -> None:
    """Keep only the rows of RUN/validation.csv up to `step` (0: none), where a run (re)starts."""
    if not path.exists():
        return
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    kept = [rows[0]] + [r for r in rows[1:] if int(r[0]) <= step] if rows else []
    if step == 0 or len(kept) <= 1:
        path.unlink()
    else:
        with open(path, "w", newline="") as f:
            csv.writer(f).writerows(kept)
