"""Fit a small `AutoencoderKL` to a set of frames (the demo's stand-in for SD's pretrained VAE)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL
from tqdm.auto import tqdm

from ..data.encoder import frames_to_tensor


def fit_autoencoder(
    vae: AutoencoderKL,
    frames: np.ndarray,
    steps: int = 400,
    batch_size: int = 8,
    lr: float = 1e-3,
    kl_weight: float = 1e-6,
    seed: int = 0,
    progress: bool = True,
    device: str | torch.device = "cpu",
) -> list[float]:
    """Train the VAE to reconstruct `frames` (L1 + a small KL term), then set its scaling factor.

    The scaling factor is chosen as SD's 0.18215 was: 1 / std of the latents, so that scaled
    latents have unit variance, which the noise schedule assumes. On CUDA the steps run under bf16
    autocast; the VAE is returned on the CPU either way.
    """
    device = torch.device(device)
    data = frames_to_tensor(frames).to(device)  # (n, 3, H, W), all frames at once: a few hundred at most
    gen = torch.Generator().manual_seed(seed)
    vae.to(device).train()
    opt = torch.optim.AdamW(vae.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, steps), eta_min=lr * 0.1)
    losses = []
    for _ in tqdm(range(steps), desc="autoencoder", disable=not progress, mininterval=1):
        idx = torch.randint(0, len(data), (batch_size,), generator=gen).to(device)
        x = data[idx]
        if torch.rand((), generator=gen) < 0.5:
            x = x.flip(-1)  # mirror: more variety from one clip
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            posterior = vae.encode(x).latent_dist
            recon = vae.decode(posterior.sample(generator=gen if device.type == "cpu" else None)).sample
            loss = F.l1_loss(recon.float(), x) + kl_weight * posterior.kl().float().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
    vae.eval()
    with torch.no_grad():
        means = torch.cat([vae.encode(chunk).latent_dist.mean for chunk in data.split(32)])
    vae.register_to_config(scaling_factor=float(1.0 / means.std()))
    vae.to("cpu")
    return losses
