"""Training options: one flat dataclass, resolved once and saved with every run."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..atomic_files import atomic_path
from ..checks import check_int, check_number, check_out_folder
from ..choices import BLOCK_REGIONS_MIN_STEPS, COMPILE_CHOICES, COMPILE_MIN_STEPS, COMPILE_REGIONS, LR_SCHEDULES
from ..choices import GRADIENT_CHECKPOINTING
from ..noise_prior import NoisePrior
from .frame_masks import check_task


@dataclass
class TrainConfig:
    data: str  # latent cache written by `sdvideo prepare`
    base: str  # the Stable Diffusion the cache was made with (diffusers folder or single file)
    out: str  # run folder
    # clips
    frames: int = 5  # frames per training clip (the original recipe: 5)
    stride: int = 1  # take every stride-th cached frame (fps of a clip = cache fps / stride)
    strides: list[int] | None = None  # several strides: multi-frame-rate training (overrides stride)
    image_ratio: float = 0.0  # share of batches that are single frames with temporal layers off
    val_holdout: float = 0.1  # share of each video's frames (its end) kept out of training
    random_crop: int = 0  # pixels: train on random square crops of this size of the cached frames (0: off)
    flip: bool = False  # mirror training clips horizontally with probability 1/2
    # optimisation
    batch_size: int = 2
    grad_accum: int = 1
    steps: int = 1000  # optimizer steps
    lr: float = 1e-4
    lr_schedule: str = "constant"  # constant | cosine | linear, after warmup
    warmup_steps: int = 0
    weight_decay: float = 0.0
    optimizer: str = "auto"  # auto (8-bit AdamW on CUDA: training/adamw8bit.py, else AdamW) | adamw | adamw8bit
    grad_clip: float = 1.0
    ema_decay: float = 0.999  # 0 turns EMA off; the saved model holds the EMA weights
    # diffusion
    caption_dropout: float = 0.1  # share of clips trained with the empty caption, for guidance
    offset_noise: float = 0.0
    min_snr_gamma: float | None = None
    # noise shared by a clip's frames (noise_prior.py); sampling defaults to the run's
    noise_share: float = 0.0  # share of the noise's variance common to all frames (PYoCo's mixed noise)
    noise_lowpass: float | None = None  # spatial frequencies up to this (cycles/latent pixel) shared entirely
    task: str = "none"  # masked-frame conditioning: none | interpolate | extend | image2video | mixed
    # what trains, and how it fits
    train: str = "temporal"  # "temporal" (frozen image model), "all", or "temporal+NAME,NAME" (module names)
    mixed_precision: str = "auto"  # auto | no | fp16 | bf16
    gradient_checkpointing: str = "auto"  # auto (least recomputation that fits the GPU) or one of GRADIENT_CHECKPOINTING
    compile: bool | str = "auto"  # torch.compile the repeated blocks (VideoUNet.compile_regions): auto | on | off
    compile_regions: str = "auto"  # what one compiled region is: auto | layers | blocks (see VideoUNet.compile_regions)
    temporal: dict[str, Any] = field(default_factory=dict)  # VideoUNet temporal options
    # bookkeeping
    seed: int = 0
    num_workers: int = 0
    device: str = "auto"  # auto | cpu | cuda
    log_every: int = 10
    checkpoint_every: int = 500
    keep_checkpoints: int = 3
    resume: bool = False
    val_every: int = 0  # 0: off
    val_clips: int = 8  # clips per validated set
    val_data: list[str] = field(default_factory=list)  # caches of unseen videos, validated beside the held-out tails
    keep_best: bool = False  # RUN/best/: the weights with the lowest held-out loss (needs val_every)
    sample_every: int = 0  # 0: off
    sample_prompts: list[str] = field(default_factory=list)
    sample_frames: int = 8
    sample_steps: int = 25
    max_bad_steps: int = 5  # consecutive non-finite losses before the run stops

    def resolved(self) -> "TrainConfig":
        """Fill the "auto" choices for this machine and check the options."""
        cfg = dataclasses.replace(self, temporal=dict(self.temporal), sample_prompts=list(self.sample_prompts),
                                  val_data=list(self.val_data))
        cuda = torch.cuda.is_available() and cfg.device != "cpu"
        if cfg.device == "auto":
            cfg.device = "cuda" if cuda else "cpu"
        if cfg.mixed_precision == "auto":
            if cuda:
                cfg.mixed_precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
            else:
                cfg.mixed_precision = "no"
        if not (cfg.train in ("temporal", "all") or cfg.train.startswith("temporal+")):
            raise ValueError(f"--train must be 'temporal', 'all' or 'temporal+MODULE,...', got {cfg.train!r}")
        if cfg.gradient_checkpointing not in ("auto", *GRADIENT_CHECKPOINTING):
            raise ValueError(f"--gradient-checkpointing must be auto or one of {', '.join(GRADIENT_CHECKPOINTING)}")
        cfg.compile = resolve_compile(cfg.compile, cuda, cfg.steps)
        if cfg.compile_regions == "auto":
            cfg.compile_regions = "blocks" if cfg.steps >= BLOCK_REGIONS_MIN_STEPS else "layers"
        if cfg.compile_regions not in COMPILE_REGIONS:
            raise ValueError(f"--compile-regions must be one of auto, {', '.join(COMPILE_REGIONS)}, got {cfg.compile_regions!r}")
        if cfg.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"--lr-schedule must be one of {', '.join(LR_SCHEDULES)}")
        check_task(cfg.task)
        cfg.noise_prior()  # checks the two noise options
        cfg.check_numbers()
        if cfg.strides:
            cfg.strides = sorted({int(s) for s in cfg.strides})
        if cfg.sample_every and not cfg.sample_prompts:
            raise ValueError("--sample-every needs at least one --sample-prompt")
        if cfg.keep_best and not (cfg.val_every and cfg.val_holdout):
            raise ValueError("--keep-best needs --val-every N and a --val-holdout above 0 (it keeps the best validated weights)")
        return cfg

    def check_numbers(self) -> None:
        """Every numeric option in its range (finite; positive where it must be), and --out a folder that can be
        written: one-line ValueErrors naming the option. Run by `resolved`, before anything is loaded."""
        for option, value, minimum in (
                ("--frames", self.frames, 1), ("--stride", self.stride, 1), ("--random-crop", self.random_crop, 0),
                ("--batch-size", self.batch_size, 1), ("--grad-accum", self.grad_accum, 1), ("--steps", self.steps, 0),
                ("--warmup-steps", self.warmup_steps, 0), ("--num-workers", self.num_workers, 0),
                ("--log-every", self.log_every, 1), ("--checkpoint-every", self.checkpoint_every, 1),
                ("--keep-checkpoints", self.keep_checkpoints, 0), ("--val-every", self.val_every, 0),
                ("--val-clips", self.val_clips, 1), ("--sample-every", self.sample_every, 0),
                ("--sample-frames", self.sample_frames, 1), ("--sample-steps", self.sample_steps, 1),
                ("max_bad_steps", self.max_bad_steps, 1)):
            hint = " (0 keeps every checkpoint)" if option == "--keep-checkpoints" else \
                " (0: off)" if option in ("--val-every", "--sample-every", "--random-crop") else ""
            check_int(option, value, minimum, hint=hint)
        for stride in self.strides or []:
            check_int("--strides", stride, 1)
        for key in ("temporal_head_dim", "temporal_ff_mult"):
            if key in self.temporal:
                check_int("--" + key.replace("_", "-"), self.temporal[key], 1)
        check_number("--lr", self.lr, above=0, hint=" (e.g. 1e-4)")
        check_number("--ema-decay", self.ema_decay, at_least=0, below=1, hint=" (0 turns EMA off; e.g. 0.999)")
        check_number("--image-ratio", self.image_ratio, at_least=0, below=1)
        check_number("--val-holdout", self.val_holdout, at_least=0, below=1)
        check_number("--caption-dropout", self.caption_dropout, at_least=0, at_most=1)
        check_number("--weight-decay", self.weight_decay, at_least=0)
        check_number("--grad-clip", self.grad_clip, at_least=0, hint=" (0: no clipping)")
        check_number("--offset-noise", self.offset_noise, at_least=0)
        check_number("--min-snr-gamma", self.min_snr_gamma, at_least=0, optional=True, hint=" (0 or unset: off)")
        check_out_folder(self.out)

    def noise_prior(self) -> NoisePrior:
        return NoisePrior(share=self.noise_share, lowpass=self.noise_lowpass)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def save(self, path: str | Path, **extra: Any) -> None:
        with atomic_path(path, durable=False) as tmp:
            tmp.write_text(json.dumps({**self.to_dict(), **extra}, indent=2) + "\n")


def resolve_compile(choice: bool | str, cuda: bool, steps: int) -> bool:
    """`--compile` as a bool: on/off (or True/False) as given; auto: on a CUDA GPU with Triton (what
    inductor generates its kernels with) for runs of at least COMPILE_MIN_STEPS steps."""
    if isinstance(choice, bool):
        return choice
    if choice not in COMPILE_CHOICES:
        raise ValueError(f"--compile must be one of {', '.join(COMPILE_CHOICES)}, got {choice!r}")
    if choice != "auto":
        return choice == "on"
    return cuda and importlib.util.find_spec("triton") is not None and steps >= COMPILE_MIN_STEPS


def load_run_config(run: str | Path) -> dict[str, Any]:
    path = Path(run) / "config.json"
    if not path.exists():
        raise FileNotFoundError(f"{run}: not a training run (no config.json); pass the --out folder of `sdvideo train`")
    return json.loads(path.read_text())
