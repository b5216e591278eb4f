"""Training options: one flat dataclass, resolved once and saved with every run."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch


@dataclass
class TrainConfig:
    data: str  # latent cache written by `sdvideo prepare`
    base: str  # the Stable Diffusion the cache was made with (diffusers folder or single file)
    out: str  # run folder
    frames: int = 5  # frames per training clip (the original recipe: 5)
    stride: int = 1  # take every stride-th cached frame (fps of a clip = cache fps / stride)
    batch_size: int = 2
    steps: int = 1000
    lr: float = 1e-4
    weight_decay: float = 0.0
    warmup_steps: int = 0
    grad_clip: float = 1.0
    caption_dropout: float = 0.1  # share of clips trained with the empty caption, for guidance
    train: str = "temporal"  # "temporal" (frozen image model) or "all"
    mixed_precision: str = "auto"  # auto | no | fp16 | bf16
    gradient_checkpointing: bool = False
    seed: int = 0
    num_workers: int = 0
    log_every: int = 10
    temporal: dict[str, Any] = field(default_factory=dict)  # VideoUNet temporal options
    device: str = "auto"  # auto | cpu | cuda

    def resolved(self) -> "TrainConfig":
        """Fill the "auto" choices for this machine."""
        cfg = dataclasses.replace(self, temporal=dict(self.temporal))
        cuda = torch.cuda.is_available() and cfg.device != "cpu"
        if cfg.device == "auto":
            cfg.device = "cuda" if cuda else "cpu"
        if cfg.mixed_precision == "auto":
            if cuda:
                cfg.mixed_precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
            else:
                cfg.mixed_precision = "no"
        if cfg.train not in ("temporal", "all"):
            raise ValueError(f"--train must be 'temporal' or 'all', got {cfg.train!r}")
        if cfg.frames < 1 or cfg.batch_size < 1 or cfg.steps < 0:
            raise ValueError("frames and batch size must be at least 1 and steps at least 0")
        return cfg

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def save(self, path: str | Path, **extra: Any) -> None:
        path = Path(path)
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps({**self.to_dict(), **extra}, indent=2) + "\n")
        tmp.replace(path)


def load_run_config(run: str | Path) -> dict[str, Any]:
    path = Path(run) / "config.json"
    if not path.exists():
        raise FileNotFoundError(f"{run}: not a training run (no config.json); pass the --out folder of `sdvideo train`")
    return json.loads(path.read_text())
