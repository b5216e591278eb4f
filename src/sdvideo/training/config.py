"""Training options: one flat dataclass, resolved once and saved with every run.

Each field states its default and its help once: `sdvideo train`'s options are generated from these fields
(`sdvideo.options`). Torch-free at import, so `sdvideo train --help` stays fast: the methods that need torch
import it themselves.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..atomic_files import atomic_path
from ..checks import check_int, check_number, check_out_folder
from ..choices import (
    BLOCK_REGIONS_MIN_STEPS,
    COMPILE_CHOICES,
    COMPILE_MIN_STEPS,
    COMPILE_REGIONS,
    GRADIENT_CHECKPOINTING,
    GRADIENT_CHECKPOINTING_COMMON,
    LR_SCHEDULES,
    MIXED_PRECISION,
    OPTIMIZERS,
    TASKS,
    TEMPORAL_LAYERS,
)
from ..options import option

if TYPE_CHECKING:
    from ..noise_prior import NoisePrior

CLIPS, OPTIMISATION, DIFFUSION, MODEL, RUN = "clips", "optimisation", "diffusion and noise", "model and memory", "run"
_LEVELS = ", ".join(GRADIENT_CHECKPOINTING_COMMON)


@dataclass
class TrainConfig:
    data: str = option(help="latent cache written by `sdvideo prepare`", metavar="CACHE")
    base: str = option(help="Stable Diffusion the cache was made with: diffusers folder or single file",
                       metavar="BASE")
    out: str = option(help="run folder to write", metavar="RUN")
    resume: bool = option(False, "continue the run in --out from its last checkpoint")
    # clips
    frames: int = option(5, "frames per training clip", group=CLIPS)
    strides: list[int] = option(factory=lambda: [1], group=CLIPS, metavar="S",
                                help="take every S-th cached frame (fps = cache fps / S); several: multi-fps training")
    image_ratio: float = option(0.0, "share of single-frame (image) batches, temporal layers off", group=CLIPS)
    val_holdout: float = option(0.1, "share of each video (its end) kept out of training", group=CLIPS, expert=True)
    random_crop: int = option(0, "train on random square crops of this many px of the cached --size (0: off)",
                              group=CLIPS, expert=True, metavar="PX")
    flip: bool = option(False, "mirror training clips horizontally at random", group=CLIPS, expert=True)
    # optimisation
    batch_size: int = option(2, "clips per step and process", group=OPTIMISATION)
    grad_accum: int = option(1, "batches accumulated per optimizer step", group=OPTIMISATION, expert=True)
    steps: int = option(1000, "optimizer steps", group=OPTIMISATION)
    lr: float = option(1e-4, "learning rate", group=OPTIMISATION)
    lr_schedule: str = option("constant", "after warmup", group=OPTIMISATION, choices=LR_SCHEDULES, expert=True)
    warmup_steps: int = option(0, "linear learning-rate warmup", group=OPTIMISATION, expert=True)
    weight_decay: float = option(0.0, "AdamW weight decay", group=OPTIMISATION, expert=True)
    optimizer: str = option("auto", "auto: adamw8bit on a CUDA GPU (sdvideo's fused 8-bit AdamW, a quarter of "
                            "AdamW's state memory), else adamw", group=OPTIMISATION, choices=OPTIMIZERS, expert=True)
    grad_clip: float = option(1.0, "gradient norm clipping (0: off)", group=OPTIMISATION, expert=True)
    ema_decay: float = option(0.999, "EMA of the weights, saved as the model (0: off)", group=OPTIMISATION,
                              expert=True)
    # diffusion
    caption_dropout: float = option(0.1, "share of clips trained with the empty caption, for guidance",
                                    group=DIFFUSION, expert=True)
    offset_noise: float = option(0.0, "offset noise strength", group=DIFFUSION, expert=True)
    min_snr_gamma: float | None = option(None, "min-SNR loss weighting gamma (unset: off)", group=DIFFUSION,
                                         expert=True)
    # noise shared by a clip's frames (noise_prior.py); sampling defaults to the run's
    noise_share: float = option(0.0, "share of the noise's variance common to a clip's frames, in [0, 1)",
                                group=DIFFUSION, help_all="share of the noise's variance common to all frames of a "
                                "clip, in [0, 1) (mixed noise; each frame's noise stays standard normal); sampling "
                                "uses the run's noise")
    noise_lowpass: float | None = option(None, "spatial frequencies up to C cycles per latent pixel share their "
                                         "noise across frames", group=DIFFUSION, metavar="C",
                                         help_all="spatial frequencies up to C cycles per latent pixel get the same "
                                         "noise in every frame (0: each frame's mean); sampling uses the run's noise")
    task: str = option("none", "masked-frame conditioning for `interpolate`, `sample --extend/--image`; "
                       "mixed: all", group=DIFFUSION, choices=TASKS,
                       help_all="masked-frame conditioning: train the model to fill unknown frames given known ones "
                       "(for `sdvideo interpolate`, `sample --extend`, `sample --image`); mixed: all of them")
    # what trains, and how it fits
    train: str = option("temporal", "temporal | all | temporal+MODULE,MODULE (module names of the UNet)",
                        group=MODEL, expert=True)
    init_temporal: str | None = option(None, "start the temporal layers from a run folder or an exported file",
                                       group=MODEL, metavar="RUN_OR_FILE",
                                       help_all="start the temporal layers from trained ones: a run folder of "
                                       "`sdvideo train` (its unet/) or a file of `sdvideo export --format temporal`; "
                                       "their options and base UNet size must be this run's")
    init_motion: str | None = option(None, "AnimateDiff motion weights to start from (file or MotionAdapter folder)",
                                     group=MODEL,
                                     metavar="PATH", help_all="start the temporal layers from a motion module file: "
                                     "AnimateDiff .ckpt/.safetensors or a diffusers MotionAdapter folder (needs "
                                     "--temporal-layers animatediff; the motion options are the file's)")
    lora_rank: int = option(0, "train LoRA adapters of this rank on the temporal layers, alone (0: off)",
                            group=MODEL, metavar="R",
                            help_all="train only low-rank adapters (peft LoRA, rank R) on the temporal layers' "
                            "linear layers, every weight frozen; needs --init-temporal or --init-motion. RUN/unet/ "
                            "holds the merged layers, RUN/lora.safetensors the adapters (0: off)")
    lora_alpha: float | None = option(None, "LoRA scale numerator: adapters add alpha / R x B A (unset: alpha = R)",
                                      group=MODEL, expert=True)
    mixed_precision: str = option("auto", "auto: bf16 (or fp16) on a CUDA GPU, else no", group=MODEL,
                                  choices=MIXED_PRECISION, expert=True)
    gradient_checkpointing: str = option(
        "auto", f"recompute activations in backward: auto (the fastest that fits the GPU), {_LEVELS}, ... "
        "(--help-all)", group=MODEL, choices=("auto", *GRADIENT_CHECKPOINTING), metavar="LEVEL",
        help_all="recompute activations in backward instead of storing them, least recomputation first: "
        f"{', '.join(GRADIENT_CHECKPOINTING)}; auto: the fastest level whose estimated peak fits this GPU "
        "(none on the CPU)")
    compile: str = option("auto", f"torch.compile the repeated blocks: auto (CUDA runs of {COMPILE_MIN_STEPS:,}+ "
                          "steps), on (--compile alone), off, or the regions: layers, blocks", group=MODEL,
                          choices=COMPILE_CHOICES, metavar="MODE", nargs="?", const="on",
                          help_all="torch.compile the repeated blocks (faster, leaner steps on a GPU after minutes "
                          "of compiling): layers (resnets, transformers: shorter compile) or blocks (whole UNet "
                          "blocks: slightly faster steps, longer compile); on (or --compile alone): blocks for "
                          f"runs of {BLOCK_REGIONS_MIN_STEPS:,} steps or more, else layers; auto: on for CUDA "
                          f"runs of {COMPILE_MIN_STEPS:,} steps or more (with Triton), else off")
    temporal: dict[str, Any] = option(factory=dict, cli=False)  # VideoUNet options; the CLI's: TemporalOptions
    # bookkeeping
    seed: int = option(0, "seed of the data order, noise and initial weights", group=RUN)
    num_workers: int = option(0, "threads reading batches ahead", group=RUN, expert=True)
    device: str = option("auto", group=RUN, choices=("auto", "cpu", "cuda"), expert=True)
    log_every: int = option(10, "steps per loss.csv row", group=RUN, expert=True)
    checkpoint_every: int = option(500, "steps between checkpoints", group=RUN)
    keep_checkpoints: int = option(3, "newest checkpoints kept (0: all)", group=RUN, expert=True)
    val_every: int = option(0, "steps between held-out loss measurements (0: off)", group=RUN)
    val_clips: int = option(8, "clips per validated set (spread over every video)", group=RUN, expert=True)
    val_data: list[str] = option(factory=list, group=RUN, metavar="CACHE",
                                 help="caches of unseen videos, validated beside the held-out tails",
                                 help_all="caches of videos never trained on (prepared with the same base), "
                                 "validated beside the held-out tails (curves in RUN/validation.csv|png)")
    keep_best: bool = option(False, "keep the lowest-held-out-loss weights in RUN/best/ (needs --val-every)",
                             group=RUN, help_all="write RUN/best/ (a run folder) whenever the held-out loss is the "
                             "lowest so far; needs --val-every")
    sample_every: int = option(0, "steps between progress samples (0: off)", group=RUN)
    sample_prompts: list[str] = option(factory=list, help="prompt of the progress samples (repeat for several)",
                                       group=RUN, flag="--sample-prompt", action="append", metavar="TEXT")
    sample_frames: int = option(8, "frames per progress sample", group=RUN, expert=True)
    sample_steps: int = option(25, "sampling steps per progress sample", group=RUN, expert=True)
    max_bad_steps: int = option(5, cli=False)  # consecutive non-finite losses before the run stops

    @classmethod
    def from_dict(cls, saved: dict[str, Any]) -> "TrainConfig":
        """A config from a run's config.json (any version: older keys are upgraded, extra keys dropped)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in upgrade_config(saved).items() if k in names})

    def resolved(self) -> "TrainConfig":
        """Fill the "auto" choices for this machine (device, mixed precision, optimizer, compile; gradient
        checkpointing needs the model: `dry_run.resolve_checkpointing`) and check the options."""
        import torch

        from .frame_masks import check_task
        from .optim import resolve_optimizer

        cfg = dataclasses.replace(self, temporal=dict(self.temporal), sample_prompts=list(self.sample_prompts),
                                  val_data=list(self.val_data), strides=_as_strides(self.strides))
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
        from .lora import check_lora_options

        check_lora_options(cfg)  # --lora-rank, --lora-alpha, --init-temporal
        if cfg.init_motion:  # AnimateDiff weights load into motion modules only
            if cfg.temporal.get("temporal_layers", "pseudo3d") != "animatediff":
                raise ValueError(f"--init-motion {cfg.init_motion}: motion modules need --temporal-layers animatediff")
            if cfg.init_temporal:
                raise ValueError("--init-motion and --init-temporal both give the temporal layers' weights; pass one")
            from ..models.motion_module_file import with_motion_options

            cfg.temporal = with_motion_options(cfg.temporal, cfg.init_motion)  # the file's motion options
        if cfg.gradient_checkpointing not in ("auto", *GRADIENT_CHECKPOINTING):
            raise ValueError(f"--gradient-checkpointing must be auto or one of {', '.join(GRADIENT_CHECKPOINTING)}")
        cfg.compile = resolve_compile(cfg.compile, cuda, cfg.steps)
        cfg.optimizer = resolve_optimizer(cfg.optimizer, cfg.device)
        if cfg.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"--lr-schedule must be one of {', '.join(LR_SCHEDULES)}")
        check_task(cfg.task)
        cfg.noise_prior()  # checks the two noise options
        cfg.check_numbers()
        cfg.strides = sorted(set(cfg.strides))
        if cfg.sample_every and not cfg.sample_prompts:
            raise ValueError("--sample-every needs at least one --sample-prompt")
        if cfg.keep_best and not (cfg.val_every and cfg.val_holdout):
            raise ValueError("--keep-best needs --val-every N and a --val-holdout above 0 (it keeps the best validated weights)")
        return cfg

    def check_numbers(self) -> None:
        """Every numeric option in its range (finite; positive where it must be), and --out a folder that can be
        written: one-line ValueErrors naming the option. Run by `resolved`, before anything is loaded."""
        if not self.strides:
            raise ValueError("--strides needs at least one stride (e.g. 1)")
        for flag, value, minimum in (
                ("--frames", self.frames, 1), ("--random-crop", self.random_crop, 0),
                ("--batch-size", self.batch_size, 1), ("--grad-accum", self.grad_accum, 1), ("--steps", self.steps, 0),
                ("--warmup-steps", self.warmup_steps, 0), ("--num-workers", self.num_workers, 0),
                ("--log-every", self.log_every, 1), ("--checkpoint-every", self.checkpoint_every, 1),
                ("--keep-checkpoints", self.keep_checkpoints, 0), ("--val-every", self.val_every, 0),
                ("--val-clips", self.val_clips, 1), ("--sample-every", self.sample_every, 0),
                ("--sample-frames", self.sample_frames, 1), ("--sample-steps", self.sample_steps, 1),
                ("max_bad_steps", self.max_bad_steps, 1)):
            hint = " (0 keeps every checkpoint)" if flag == "--keep-checkpoints" else \
                " (0: off)" if flag in ("--val-every", "--sample-every", "--random-crop") else ""
            check_int(flag, value, minimum, hint=hint)
        for stride in self.strides:
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
        from ..noise_prior import NoisePrior

        return NoisePrior(share=self.noise_share, lowpass=self.noise_lowpass)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def save(self, path: str | Path, **extra: Any) -> None:
        with atomic_path(path, durable=False) as tmp:
            tmp.write_text(json.dumps({**self.to_dict(), **extra}, indent=2) + "\n")


@dataclass
class TemporalOptions:
    """`sdvideo train`'s options for the temporal layers (VideoUNet's keyword arguments), gathered into
    `TrainConfig.temporal`. Their defaults are VideoUNet's (tests/test_cli_help.py checks), except that
    `temporal_embedding`'s is the CLI's own choice for new runs: turning it on by default is this one line
    (the option is --temporal-embedding / --no-temporal-embedding either way)."""

    temporal_head_dim: int = option(64, "channels per temporal attention head", group=MODEL, expert=True)
    temporal_ff_mult: int = option(2, "temporal feed-forward width, times the channels", group=MODEL, expert=True)
    fps_conditioning: bool = option(True, "add an fps embedding to the time embedding", group=MODEL, expert=True)
    temporal_embedding: bool = option(False, "temporal attention reads the time embedding (diffusion step and fps)",
                                      group=MODEL, expert=True, negatable=True)
    temporal_layers: str = option("pseudo3d", "pseudo3d or animatediff (motion modules)",
                                  group=MODEL, choices=TEMPORAL_LAYERS, metavar="DESIGN",
                                  help_all="the temporal layers' design: pseudo3d (Make-A-Video's temporal "
                                  "convolutions and attention) or animatediff (AnimateDiff's motion modules, which "
                                  "--init-motion loads)")


def auto_choices(given: TrainConfig, resolved: TrainConfig) -> str:
    """One line naming what each option given as "auto" resolved to, e.g. "auto chose: --device cpu,
    --optimizer adamw"; empty when no option was auto (or none is resolved yet)."""
    first = ("device", "mixed_precision", "optimizer", "gradient_checkpointing", "compile")
    names = [*first, *(f.name for f in dataclasses.fields(TrainConfig) if f.name not in first)]
    chosen = [f"--{name.replace('_', '-')} {getattr(resolved, name)}" for name in names
              if getattr(given, name) == "auto" and getattr(resolved, name) != "auto"]
    return "auto chose: " + ", ".join(chosen) if chosen else ""


def _as_strides(strides: Any) -> list[int]:
    """`strides` as a list of ints: one int, or None (the default stride 1) are accepted from Python."""
    if strides is None:
        return [1]
    if isinstance(strides, (int, float)) and not isinstance(strides, bool):
        strides = [strides]
    out = []
    for s in strides:
        check_int("--strides", s, 1)
        out.append(int(s))
    return out


def resolve_compile(choice: bool | str, cuda: bool, steps: int) -> str:
    """`--compile` resolved: "off", "layers" or "blocks". layers/blocks/off as given; on (or True):
    blocks for runs of at least BLOCK_REGIONS_MIN_STEPS steps, else layers; auto: on for a CUDA GPU with
    Triton (what inductor generates its kernels with) for runs of at least COMPILE_MIN_STEPS steps, else off."""
    if isinstance(choice, bool):
        choice = "on" if choice else "off"
    if choice not in COMPILE_CHOICES:
        raise ValueError(f"--compile must be one of {', '.join(COMPILE_CHOICES)}, got {choice!r}")
    if choice == "auto":
        wanted = cuda and importlib.util.find_spec("triton") is not None and steps >= COMPILE_MIN_STEPS
        choice = "on" if wanted else "off"
    if choice == "on":
        return "blocks" if steps >= BLOCK_REGIONS_MIN_STEPS else "layers"
    return choice


def upgrade_config(saved: dict[str, Any]) -> dict[str, Any]:
    """A config dict (a run's config.json, a checkpoint's saved config) in today's options: `stride`
    (before `--strides` took one or more values) becomes `strides`; `compile` True/False with
    `compile_regions` (before `--compile` named the regions) becomes "layers"/"blocks"/"off"; a resolved
    config's optimizer "auto" (before it was resolved) becomes the optimizer auto chose on its device."""
    cfg = dict(saved)
    if "stride" in cfg:
        stride = cfg.pop("stride")
        if not cfg.get("strides"):
            cfg["strides"] = [int(stride or 1)]
    if cfg.get("strides") is None and "strides" in cfg:
        cfg["strides"] = [1]
    regions = cfg.pop("compile_regions", None)
    if "compile" in cfg:
        choice = cfg["compile"]
        if choice is False:
            cfg["compile"] = "off"
        elif choice is True or choice == "on":
            cfg["compile"] = regions if regions in COMPILE_REGIONS else "on"
    if cfg.get("optimizer") == "auto" and cfg.get("device") in ("cpu", "cuda"):
        from .optim import resolve_optimizer

        cfg["optimizer"] = resolve_optimizer("auto", cfg["device"])
    return cfg


def load_run_config(run: str | Path) -> dict[str, Any]:
    path = Path(run) / "config.json"
    if not path.exists():
        raise FileNotFoundError(f"{run}: not a training run (no config.json); pass the --out folder of `sdvideo train`")
    return json.loads(path.read_text())
