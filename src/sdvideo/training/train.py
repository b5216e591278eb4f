"""Train the temporal layers of an inflated Stable Diffusion UNet on cached video latents.

`train(config)` reads top to bottom: load the base UNet and the cache, inflate, freeze, train,
save. The VAE and text encoder are not loaded: `sdvideo prepare` already turned videos and captions
into latents and embeddings (the original recipe's main memory saving).
"""

from __future__ import annotations

import csv
import math
import time
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from diffusers import DDPMScheduler
from diffusers.optimization import get_scheduler
from torch.utils.data import DataLoader
from torch.utils.tensorboard import SummaryWriter
from tqdm.auto import tqdm

from ..data.dataset import ClipDataset, empty_text_embedding, load_cache_info
from ..models.base import load_base
from ..models.video_unet import VideoUNet, inflate
from .config import TrainConfig
from .diffusion_loss import diffusion_loss
from .loss_plot import write_loss_plot


def build_video_unet(config: TrainConfig) -> tuple[VideoUNet, DDPMScheduler]:
    """The base's UNet inflated with the configured temporal layers, and its training noise schedule."""
    base = load_base(config.base)
    video = inflate(base.unet, **config.temporal)
    if config.train == "temporal":
        video.freeze_spatial()
    return video, base.scheduler


def train(config: TrainConfig, progress: bool = True) -> dict[str, Any]:
    """Train and save `config.out/unet` (a `VideoUNet` folder), `config.json`, `loss.csv`, `loss.png`."""
    cfg = config.resolved()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    accelerator = Accelerator(mixed_precision=cfg.mixed_precision, cpu=cfg.device == "cpu")
    torch.manual_seed(cfg.seed)

    # Data: clips of `frames` cached latents (already scaled by the VAE's scaling factor).
    cache = load_cache_info(cfg.data)
    dataset = ClipDataset(cfg.data, frames=cfg.frames, stride=cfg.stride)
    empty_text = empty_text_embedding(cfg.data)  # (77, dim): the caption-dropout input
    loader = DataLoader(
        dataset,
        batch_size=cfg.batch_size,
        shuffle=True,
        drop_last=len(dataset) >= cfg.batch_size,
        num_workers=cfg.num_workers,
        generator=torch.Generator().manual_seed(cfg.seed),
    )

    # Model: inflate the base UNet; only the temporal layers train unless --train all.
    video, noise_schedule = build_video_unet(cfg)
    if video.unet.config.in_channels != cache["latent_shape"][0]:
        raise ValueError(
            f"{cfg.data}: cached latents have {cache['latent_shape'][0]} channels but the base UNet takes "
            f"{video.unet.config.in_channels}; prepare the cache with the same --base"
        )
    if cfg.gradient_checkpointing:
        video.enable_gradient_checkpointing()
    if accelerator.device.type == "cuda" and cfg.mixed_precision in ("fp16", "bf16") and cfg.train == "temporal":
        # Frozen weights in half precision: no fp32 copy, no per-step casts. Trainable stay fp32.
        half = torch.bfloat16 if cfg.mixed_precision == "bf16" else torch.float16
        for p in video.parameters():
            if not p.requires_grad:
                p.data = p.data.to(half)
    trainable = [p for p in video.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=cfg.lr, weight_decay=cfg.weight_decay)
    lr_schedule = get_scheduler("constant_with_warmup", optimizer, num_warmup_steps=cfg.warmup_steps)
    video, optimizer, loader, lr_schedule = accelerator.prepare(video, optimizer, loader, lr_schedule)
    summary = accelerator.unwrap_model(video).format_parameter_summary()
    accelerator.print(summary)

    cfg.save(out / "config.json", cache_fps=cache["fps"], cache_size=cache["size"], latent_shape=cache["latent_shape"])
    writer = SummaryWriter(str(out / "logs")) if accelerator.is_main_process else None
    generator = torch.Generator(device=accelerator.device).manual_seed(cfg.seed + accelerator.process_index)
    dropout_rng = torch.Generator().manual_seed(cfg.seed + 1)
    history: list[tuple[int, float]] = []
    bar = tqdm(total=cfg.steps, desc="train", disable=not (progress and accelerator.is_main_process))
    started = time.time()
    step = 0
    video.train()
    while step < cfg.steps:
        for batch in loader:
            latents = batch["latents"].to(accelerator.device)  # (b, c, frames, h, w)
            text = batch["text"].to(accelerator.device)  # (b, 77, dim)
            drop = torch.rand(text.shape[0], generator=dropout_rng) < cfg.caption_dropout
            text[drop.to(text.device)] = empty_text.to(text)
            fps = batch["fps"].to(accelerator.device)

            with accelerator.accumulate(video), accelerator.autocast():
                loss = diffusion_loss(
                    lambda noisy, t: video(noisy, t, text, fps=fps).sample, noise_schedule, latents, generator
                )
                accelerator.backward(loss)
                if cfg.grad_clip > 0 and accelerator.sync_gradients:
                    accelerator.clip_grad_norm_(trainable, cfg.grad_clip)
                optimizer.step()
                lr_schedule.step()
                optimizer.zero_grad(set_to_none=True)

            step += 1
            value = accelerator.gather(loss.detach()).mean().item()
            if not math.isfinite(value):
                raise FloatingPointError(f"loss became {value} at step {step}; lower --lr or use --mixed-precision no")
            history.append((step, value))
            bar.update(1)
            bar.set_postfix(loss=f"{value:.4f}")
            if writer is not None and step % cfg.log_every == 0:
                writer.add_scalar("train/loss", value, step)
                writer.add_scalar("train/lr", lr_schedule.get_last_lr()[0], step)
            if step >= cfg.steps:
                break
    bar.close()

    # Save: the whole video UNet (config.json + safetensors), the loss history and its plot.
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        model = accelerator.unwrap_model(video)
        model.to(torch.float32).save_pretrained(out / "unet")
        with open(out / "loss.csv", "w", newline="") as f:
            csv.writer(f).writerows([("step", "loss"), *history])
        if history:
            write_loss_plot(*zip(*history), out / "loss.png", title="video training loss (temporal layers)")
        writer.close()
    return dict(steps=step, seconds=time.time() - started, final_loss=history[-1][1] if history else None,
                parameters=summary, run=str(out))
