"""The experiment's two pre-training phases on any device (CUDA with bf16 autocast, or CPU).

`sdvideo.training.autoencoder.fit_autoencoder` and `sdvideo.training.image_phase.train_image_unet`
(what `sdvideo demo` uses) run on the CPU only; the experiment needs the same two steps on a GPU:
1. fit a small AutoencoderKL to the frames (SD's VAE would come pretrained), then set its scaling
   factor to 1 / std of the latents as SD's 0.18215 was chosen;
2. train the 2-D UNet on single cached frames (SD's UNet would come pretrained): Make-A-Video's
   image phase, before the temporal layers exist.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
from tqdm.auto import tqdm

from sdvideo.data.dataset import ClipDataset, ClipKey, empty_text_embedding
from sdvideo.training.diffusion_loss import diffusion_loss


def _autocast(device: torch.device):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


def fit_autoencoder(vae: AutoencoderKL, frames: np.ndarray, steps: int, device: torch.device,
                    batch_size: int = 16, lr: float = 1e-3, kl_weight: float = 1e-6, seed: int = 0) -> list[float]:
    """L1 reconstruction + a small KL term on uint8 (n, H, W, 3) frames; returns the loss per step."""
    data = torch.from_numpy(frames).permute(0, 3, 1, 2).contiguous()  # uint8 (n, 3, H, W), cast per batch
    data = data.to(device)
    gen = torch.Generator().manual_seed(seed)
    vae.to(device).train()
    opt = torch.optim.AdamW(vae.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, steps), eta_min=lr * 0.1)
    losses = []
    for _ in tqdm(range(steps), desc="autoencoder", mininterval=5):
        idx = torch.randint(0, len(data), (batch_size,), generator=gen).to(device)
        x = data[idx].float().div(127.5).sub(1.0)  # (b, 3, H, W) in [-1, 1]
        if torch.rand((), generator=gen) < 0.5:
            x = x.flip(-1)
        with _autocast(device):
            posterior = vae.encode(x).latent_dist
            recon = vae.decode(posterior.sample()).sample
            loss = F.l1_loss(recon.float(), x) + kl_weight * posterior.kl().float().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
    vae.eval()
    with torch.no_grad():
        means = torch.cat([vae.encode(c.float().div(127.5).sub(1.0)).latent_dist.mean for c in data.split(64)])
    vae.register_to_config(scaling_factor=float(1.0 / means.std()))
    vae.to("cpu")
    return losses


def train_image_unet(unet: UNet2DConditionModel, scheduler: DDPMScheduler, cache_dir: str, steps: int,
                     device: torch.device, batch_size: int = 32, lr: float = 3e-4, caption_dropout: float = 0.1,
                     seed: int = 0) -> list[float]:
    """Every UNet weight on the cached frames as independent images; returns the loss per step."""
    # The whole (small) set of frames on the device once: no per-step loading (a DataLoader over the
    # memory-mapped cache made this phase data-bound at ~6 steps/s on an H100).
    dataset = ClipDataset(cache_dir, frames=1)
    items = [dataset[ClipKey(j, 0, True)] for j in range(dataset.num_images)]
    all_latents = torch.stack([it["latents"][:, 0] for it in items]).to(device)  # (N, c, h, w)
    all_text = torch.stack([it["text"] for it in items]).to(device, torch.bfloat16 if device.type == "cuda" else None)
    order_gen = torch.Generator().manual_seed(seed)
    empty = empty_text_embedding(cache_dir).to(device)  # (77, dim)
    gen = torch.Generator(device=device).manual_seed(seed)
    unet.to(device).train()
    opt = torch.optim.AdamW(unet.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(1, steps), pct_start=0.05)
    losses: list[float] = []
    bar = tqdm(total=steps, desc="image phase", mininterval=5)
    while len(losses) < steps:
        order = torch.randperm(len(all_latents), generator=order_gen)
        for pick in order[: len(order) - len(order) % batch_size or len(order)].split(batch_size):
            pick = pick.to(device)
            latents, text = all_latents[pick], all_text[pick].to(empty.dtype)  # (b, c, h, w), (b, 77, dim)
            drop = torch.rand(text.shape[0], generator=gen, device=device) < caption_dropout
            text = torch.where(drop[:, None, None], empty, text)
            with _autocast(device):
                loss = diffusion_loss(lambda noisy, t: unet(noisy, t, text).sample, scheduler, latents, gen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
            opt.step()
            sched.step()
            losses.append(loss.item())
            bar.update(1)
            if len(losses) >= steps:
                break
    bar.close()
    unet.eval().to("cpu")
    return losses
