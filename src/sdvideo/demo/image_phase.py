"""Train the 2-D UNet on single frames: Make-A-Video's image phase, before temporal layers exist."""

from __future__ import annotations

import torch
from diffusers import DDPMScheduler, UNet2DConditionModel
from tqdm.auto import tqdm

from ..data.dataset import ClipDataset, ClipKey, empty_text_embedding
from ..training.diffusion_loss import diffusion_loss


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
    device: str | torch.device = "cpu",
    holdout: float = 0.0,
    clip_frames: int = 1,
) -> list[float]:
    """Fit every UNet weight to the cached frames as independent images. Returns the loss per step.

    With `holdout` above 0, only the training frames: each video's held-out tail, cut as the video
    phase cuts it for clips of `clip_frames` frames (`ClipDataset(part="train")`), is never seen, so
    held-out clips are unseen by the image model too.

    Every cached frame is loaded onto `device` once (this phase stands in for a pretrained image
    model, so its data is one clip or a few): reading batches through a DataLoader made it data-bound
    on a GPU. On CUDA the steps run under bf16 autocast; the UNet is returned on the CPU.
    """
    device = torch.device(device)
    dataset = ClipDataset(cache_dir, frames=clip_frames, holdout=holdout, part="train" if holdout else "all")
    items = [dataset[ClipKey(j, 0, True)] for j in range(dataset.num_images)]
    all_latents = torch.stack([it["latents"][:, 0] for it in items]).to(device)  # (N, c, h, w)
    all_text = torch.stack([it["text"] for it in items]).to(device)  # (N, 77, dim)
    empty = empty_text_embedding(cache_dir).to(device)  # (77, dim)
    order_gen = torch.Generator().manual_seed(seed)
    gen = torch.Generator(device=device).manual_seed(seed)
    unet.to(device).train()
    opt = torch.optim.AdamW(unet.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(1, steps), pct_start=0.05)
    losses: list[float] = []
    bar = tqdm(total=steps, desc="image phase", disable=not progress, mininterval=1)
    full = max(batch_size, len(all_latents) - len(all_latents) % batch_size)  # drop the last partial batch
    while len(losses) < steps:
        for pick in torch.randperm(len(all_latents), generator=order_gen)[:full].split(batch_size):
            pick = pick.to(device)
            latents, text = all_latents[pick], all_text[pick]  # (b, c, h, w), (b, 77, dim)
            drop = torch.rand(len(pick), generator=gen, device=device) < caption_dropout
            text = torch.where(drop[:, None, None], empty, text)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                loss = diffusion_loss(lambda noisy, t: unet(noisy, t, text).sample, scheduler, latents, gen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
            opt.step()
            sched.step()
            losses.append(loss.item())
            bar.update(1)
            bar.set_postfix(loss=f"{losses[-1]:.4f}", refresh=False)
            if len(losses) >= steps:
                break
    bar.close()
    unet.eval().to("cpu")
    return losses
