"""`sdvideo sample`: load a training run, generate videos from prompts, write .mp4, .gif and a grid."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Sequence

import torch
from diffusers import (
    DDIMScheduler,
    DDPMScheduler,
    DPMSolverMultistepScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    PNDMScheduler,
)

from ..models.base import load_base
from ..models.video_unet import VideoUNet
from ..training.config import load_run_config
from .export import to_uint8_frames, write_gif, write_grid, write_mp4
from .sampler import decode_latents, denoise_video

SCHEDULERS = {
    "ddim": DDIMScheduler,
    "ddpm": DDPMScheduler,
    "dpm++": DPMSolverMultistepScheduler,
    "euler": EulerDiscreteScheduler,
    "euler-a": EulerAncestralDiscreteScheduler,
    "pndm": PNDMScheduler,
}


def make_scheduler(name: str, base_scheduler_config: dict[str, Any]):
    """A diffusers scheduler by short name, configured with the base model's noise schedule."""
    if name not in SCHEDULERS:
        raise ValueError(f"unknown scheduler {name!r}; choose one of {', '.join(SCHEDULERS)}")
    return SCHEDULERS[name].from_config(base_scheduler_config)


def load_video_unet(run: str | Path, device: torch.device, dtype: torch.dtype) -> VideoUNet:
    folder = Path(run) / "unet"
    if not (folder / "config.json").exists():
        raise FileNotFoundError(f"{run}: no trained model in {folder}; did `sdvideo train` finish?")
    return VideoUNet.from_pretrained(folder).to(device, dtype).eval()


def slug(text: str, limit: int = 48) -> str:
    return re.sub(r"[^a-zA-Z0-9]+", "-", text).strip("-").lower()[:limit] or "video"


def sample(
    run: str | Path,
    prompts: Sequence[str],
    out: str | Path,
    frames: int = 8,
    steps: int = 25,
    guidance_scale: float = 7.5,
    negative_prompt: str = "",
    seed: int = 0,
    fps: float | None = None,
    size: int | None = None,
    scheduler: str = "ddim",
    device: str = "auto",
    progress: bool = True,
) -> dict[str, Any]:
    """Generate one video per prompt. Writes `<slug>.mp4`, `<slug>.gif` and `grid.png` into `out`.

    fps defaults to the frame rate of the training cache (also the playback rate of the files).
    size defaults to the training size (pixels).
    """
    config = load_run_config(run)
    dev = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else ("cpu" if device == "auto" else device))
    dtype = torch.float16 if dev.type == "cuda" else torch.float32
    base = load_base(config["base"])
    unet = load_video_unet(run, dev, dtype)
    vae, text_encoder = base.vae.to(dev, dtype).eval(), base.text_encoder.to(dev, dtype).eval()
    fps = float(fps if fps is not None else config.get("cache_fps", 10.0) / config.get("stride", 1))
    size = size or config.get("cache_size")
    down = 2 ** (len(vae.config.block_out_channels) - 1)
    if size % down:
        raise ValueError(f"size {size} is not a multiple of the VAE's downsampling factor {down}")

    text = base.encode_text(list(prompts), device=dev)
    negative = base.encode_text([negative_prompt] * len(prompts), device=dev)
    generator = torch.Generator(device="cpu").manual_seed(seed)
    latents = denoise_video(
        unet, make_scheduler(scheduler, base.scheduler.config), text, negative, frames,
        (size // down, size // down), steps, guidance_scale, fps, generator, progress=progress,
    )
    videos = decode_latents(vae, latents)  # (prompts, frames, 3, H, W) in [0, 1]

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written: list[str] = []
    rows = []
    for i, (prompt, video) in enumerate(zip(prompts, videos)):
        frames_u8 = to_uint8_frames(video)
        name = f"{i:02d}-{slug(prompt)}"
        write_mp4(frames_u8, out / f"{name}.mp4", fps)
        write_gif(frames_u8, out / f"{name}.gif", fps)
        written += [str(out / f"{name}.mp4"), str(out / f"{name}.gif")]
        rows.append(frames_u8)
    write_grid(rows, out / "grid.png", labels=list(prompts))
    written.append(str(out / "grid.png"))
    return dict(files=written, fps=fps, frames=frames, size=size, videos=videos)
