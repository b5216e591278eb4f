"""Train the 2-D UNet on single frames: Make-A-Video's image phase, before temporal layers exist."""

from __future__ import annotations

import torch
from diffusers import DDPMScheduler, UNet2DConditionModel
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from ..data.dataset import ClipDataset, empty_text_embedding
from .diffusion_loss import diffusion_loss


def train_image_unet(
    unet: UNet2DConditionModel,
    scheduler: DDPMScheduler,
    cache_dir: str,
    steps: int = 1000,
    batch_size: int = 8,
    lr: float = 3e-4,
    caption_dropout: float = 0.1,
    seed: int = 0,
    progress: bool = True,
) -> list[float]:
    """Fit every UNet weight to the cached frames as independent images. Returns the loss per step."""
    dataset = ClipDataset(cache_dir, frames=1)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, drop_last=len(dataset) >= batch_size,
                        generator=torch.Generator().manual_seed(seed))
    empty = empty_text_embedding(cache_dir)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(unet.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(1, steps), pct_start=0.05)
    unet.train()
    losses: list[float] = []
    bar = tqdm(total=steps, desc="image phase", disable=not progress)
    while len(losses) < steps:
        for batch in loader:
            latents = batch["latents"][:, :, 0]  # (b, c, h, w): one frame per sample
            text = batch["text"]
            text[torch.rand(text.shape[0], generator=gen) < caption_dropout] = empty
            loss = diffusion_loss(lambda noisy, t: unet(noisy, t, text).sample, scheduler, latents, gen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
            opt.step()
            sched.step()
            losses.append(loss.item())
            bar.update(1)
            bar.set_postfix(loss=f"{losses[-1]:.4f}")
            if len(losses) >= steps:
                break
    bar.close()
    unet.eval()
    return losses
