"""Validation loss on held-out clips at fixed timesteps and noise, with and without the temporal layers.

The gap between the video model's loss and the frame-independent loss (same weights, temporal
layers off) is the first sign that the temporal layers learn something about motion.
`fixed_noise_losses` is the measurement itself; `sdvideo eval` uses it too (eval/loss_buckets.py).
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, ContextManager, Sequence

import torch
from diffusers import DDPMScheduler
from torch.utils.data import Dataset

from .diffusion_loss import diffusion_loss

DEFAULT_TIMESTEPS = (50, 200, 400, 600, 800, 950)

# predict(noisy (b, c, f, h, w), t (b,), text (b, 77, d), fps (b,)) -> (b, c, f, h, w)
Predictor = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def video_predictor(model, enable_time: bool) -> Predictor:
    """A `VideoUNet` with its temporal layers on or off."""
    return lambda x, t, text, fps: model(x, t, text, fps=fps, enable_time=enable_time).sample


def evenly_spaced_items(dataset: Dataset, count: int) -> list[dict[str, Any]]:
    """`count` evenly spaced items of a dataset (all when it holds fewer): deterministic."""
    n = len(dataset)
    if n == 0:
        raise ValueError("no held-out clips for validation; lower --val-holdout or add videos")
    picks = sorted({round(i * (n - 1) / max(1, count - 1)) for i in range(min(count, n))})
    return [dataset[i] for i in picks]


def stack_clips(items: Sequence[dict[str, Any]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Dataset items -> latents (n, c, f, h, w), caption embeddings (n, 77, dim), fps (n,)."""
    return (torch.stack([it["latents"] for it in items]), torch.stack([it["text"] for it in items]),
            torch.tensor([float(it["fps"]) for it in items]))


@torch.no_grad()
def fixed_noise_losses(predict: Predictor, scheduler: DDPMScheduler, latents: torch.Tensor, text: torch.Tensor,
                       fps: torch.Tensor, timesteps: Sequence[int], seed: int, batch_size: int,
                       device: torch.device, autocast: Callable[[], ContextManager] | None = None) -> list[float]:
    """Mean loss over the clips latents (n, c, f, h, w), text (n, 77, d), fps (n,) at each timestep.

    The noise of timestep t for the clips starting at s comes from a generator seeded with
    seed + 7919 t + s, so any model measured with the same arguments sees exactly the same noise.
    """
    losses = []
    for t in timesteps:
        total = 0.0
        for s in range(0, len(latents), batch_size):
            lat = latents[s : s + batch_size].to(device)
            txt = text[s : s + batch_size].to(device)
            rate = fps[s : s + batch_size].to(device)
            gen = torch.Generator(device=device).manual_seed(seed + 7919 * t + s)
            ts = torch.full((lat.shape[0],), t, device=device, dtype=torch.long)
            with autocast() if autocast else contextlib.nullcontext():
                loss = diffusion_loss(lambda x, tt: predict(x, tt, txt, rate), scheduler, lat, gen, timesteps=ts)
            total += loss.item() * lat.shape[0]
        losses.append(total / len(latents))
    return losses


class Validator:
    """Holds a fixed set of held-out clips; every call measures the loss on exactly the same noise."""

    def __init__(self, dataset: Dataset, clips: int = 8, timesteps: Sequence[int] = DEFAULT_TIMESTEPS,
                 seed: int = 1234, batch_size: int = 2) -> None:
        self.latents, self.text, self.fps = stack_clips(evenly_spaced_items(dataset, clips))
        self.timesteps = list(timesteps)
        self.seed = seed
        self.batch_size = batch_size

    @torch.no_grad()
    def __call__(self, model, scheduler: DDPMScheduler, device: torch.device, autocast=None) -> dict[str, float]:
        """Mean loss per timestep and overall, for `video` and `independent` (temporal layers off)."""
        was_training = model.training
        model.eval()
        results: dict[str, float] = {}
        for mode, enable_time in (("video", True), ("independent", False)):
            per_t = fixed_noise_losses(video_predictor(model, enable_time), scheduler, self.latents, self.text,
                                       self.fps, self.timesteps, self.seed, self.batch_size, device, autocast)
            results.update({f"{mode}/t{t}": value for t, value in zip(self.timesteps, per_t)})
            results[mode] = sum(per_t) / len(per_t)
        results["gap"] = results["independent"] - results["video"]
        model.train(was_training)
        return results
