"""Validation loss on held-out clips at fixed timesteps and noise, with and without the temporal layers.

The gap between the video model's loss and the frame-independent loss (same weights, temporal
layers off) is the first sign that the temporal layers learn something about motion.
"""

from __future__ import annotations

from typing import Sequence

import torch
from diffusers import DDPMScheduler
from torch.utils.data import Dataset

from .diffusion_loss import diffusion_loss

DEFAULT_TIMESTEPS = (50, 200, 400, 600, 800, 950)


class Validator:
    """Holds a fixed set of held-out clips; every call measures the loss on exactly the same noise."""

    def __init__(self, dataset: Dataset, clips: int = 8, timesteps: Sequence[int] = DEFAULT_TIMESTEPS,
                 seed: int = 1234, batch_size: int = 2) -> None:
        n = len(dataset)
        if n == 0:
            raise ValueError("no held-out clips for validation; lower --val-holdout or add videos")
        picks = sorted({round(i * (n - 1) / max(1, clips - 1)) for i in range(min(clips, n))})
        items = [dataset[i] for i in picks]
        self.latents = torch.stack([it["latents"] for it in items])  # (n, c, f, h, w)
        self.text = torch.stack([it["text"] for it in items])  # (n, 77, dim)
        self.fps = torch.tensor([float(it["fps"]) for it in items])
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
            per_t = []
            for t in self.timesteps:
                gen = torch.Generator(device=device).manual_seed(self.seed + t)
                losses = []
                for s in range(0, len(self.latents), self.batch_size):
                    lat = self.latents[s : s + self.batch_size].to(device)
                    txt = self.text[s : s + self.batch_size].to(device)
                    fps = self.fps[s : s + self.batch_size].to(device)
                    ts = torch.full((lat.shape[0],), t, device=device, dtype=torch.long)
                    with autocast() if autocast else torch.autocast(device.type, enabled=False):
                        loss = diffusion_loss(
                            lambda x, tt: model(x, tt, txt, fps=fps, enable_time=enable_time).sample,
                            scheduler, lat, gen, timesteps=ts,
                        )
                    losses.append(loss.item() * lat.shape[0])
                value = sum(losses) / len(self.latents)
                results[f"{mode}/t{t}"] = value
                per_t.append(value)
            results[mode] = sum(per_t) / len(per_t)
        results["gap"] = results["independent"] - results["video"]
        model.train(was_training)
        return results
