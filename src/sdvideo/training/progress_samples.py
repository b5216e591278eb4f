"""Sample videos for fixed prompts during training: see the model improve, not only its loss."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..sampling.export import write_videos
from ..sampling.sampler import decode_latents, denoise_video


@torch.no_grad()
def write_progress_samples(model, base, prompts: torch.Tensor, cfg, cache: dict[str, Any], folder: Path,
                           writer=None, step: int = 0) -> list[Path]:
    """Sample `prompts` (embeddings (n, 77, dim)) with a fixed seed; write mp4/gif per prompt and a grid."""
    from ..sampling.sample import make_scheduler

    param = next(model.parameters())
    device = param.device
    vae = base.vae.to(device)
    h, w = cache["latent_shape"][1:]
    fps = cache["fps"] / min(cfg.strides or [1])
    was_training = model.training
    model.eval()
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        latents = denoise_video(
            model, make_scheduler("ddim", base.scheduler.config), prompts.to(device),
            base.encode_text([""] * len(prompts), device=device), cfg.sample_frames, (h, w), cfg.sample_steps,
            7.5, fps, torch.Generator().manual_seed(cfg.seed), progress=False,
        )
    model.train(was_training)
    videos = decode_latents(vae, latents.float())  # (n, frames, 3, H, W) in [0, 1]
    files, rows = write_videos(videos, folder, [f"{i:02d}" for i in range(len(videos))], fps, labels=cfg.sample_prompts)
    if writer is not None:
        grid = np.concatenate([np.concatenate(list(r), axis=1) for r in rows], axis=0)  # (H*n, W*f, 3)
        writer.add_image("samples/grid", grid, step, dataformats="HWC")
    return files
