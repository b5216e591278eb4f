"""`sdvideo train --dry-run`: what a run would do, without doing it."""

from __future__ import annotations

import dataclasses
import json

import torch

from ..data.dataset import load_cache_info
from .config import TrainConfig, auto_choices
from .memory_estimate import (
    USABLE_SHARE,
    GiB,
    checkpointing_advice,
    estimate_training_memory,
    largest_frame_count,
    lightest_checkpointing,
)
from .optim import resolve_optimizer


def _precision(cfg: TrainConfig) -> str:
    return cfg.mixed_precision if cfg.mixed_precision != "no" else "fp32"


def memory_options(cfg: TrainConfig, unet_config: dict, latent_size: int) -> dict:
    """`estimate_training_memory`'s settings for a resolved config, as the run would have them on a GPU."""
    precision = _precision(cfg)
    return dict(
        unet_config=dict(unet_config), temporal=cfg.temporal, latent_size=latent_size,
        mixed_precision="bf16" if precision == "fp32" and cfg.device == "cuda" else precision,
        optimizer=resolve_optimizer(cfg.optimizer, "cuda"), train="temporal" if cfg.train != "all" else "all",
        gradient_checkpointing=cfg.gradient_checkpointing, compiled=cfg.compile != "off",
        lora_rank=cfg.lora_rank,
    )


def gpu_budget() -> tuple[float, str]:
    """(GiB, name) of this machine's first GPU, or of a 24 GB consumer card when there is none."""
    if torch.cuda.is_available():
        return torch.cuda.get_device_properties(0).total_memory / GiB, torch.cuda.get_device_name(0)
    return 24.0, "a 24 GiB card"


def auto_checkpointing(
    cfg: TrainConfig, unet_config: dict, latent_size: int, budget_gib: float | None = None
) -> tuple[str, float | None]:
    """`--gradient-checkpointing auto`'s level: the one that recomputes least while the run's estimated
    peak fits USABLE_SHARE of `budget_gib` (default: this GPU's memory), with that estimate; `none` off
    the GPU and `full` when no level fits (the memory warning then says what would), both without one."""
    if cfg.device != "cuda":
        return "none", None
    options = memory_options(dataclasses.replace(cfg, gradient_checkpointing="none"), unet_config, latent_size)
    usable = USABLE_SHARE * (budget_gib or gpu_budget()[0])
    return lightest_checkpointing(usable, cfg.batch_size, cfg.frames, **options) or ("full", None)


def resolve_checkpointing(
    cfg: TrainConfig, unet_config: dict, latent_size: int, budget_gib: float | None = None
) -> TrainConfig:
    """The config with `--gradient-checkpointing auto` replaced by `auto_checkpointing`'s level; other
    levels are returned as they are."""
    if cfg.gradient_checkpointing != "auto":
        return cfg
    level, _ = auto_checkpointing(cfg, unet_config, latent_size, budget_gib)
    return dataclasses.replace(cfg, gradient_checkpointing=level)


def memory_warning(
    cfg: TrainConfig, unet_config: dict, latent_size: int, budget_gib: float | None = None, estimate_gib: float | None = None
) -> str | None:
    """One line when the run's estimated peak (`estimate_gib` if already known) exceeds USABLE_SHARE of
    `budget_gib` (default: this GPU's memory), naming the checkpointing level or frame count that fits;
    None when it fits."""
    cfg = resolve_checkpointing(cfg, unet_config, latent_size, budget_gib)
    options = memory_options(cfg, unet_config, latent_size)
    usable = USABLE_SHARE * (budget_gib or gpu_budget()[0])
    return checkpointing_advice(usable, cfg.batch_size, cfg.frames, current_gib=estimate_gib, **options)


def describe(config: TrainConfig) -> str:
    """Resolved options, parameter counts and the estimated peak GPU memory of one training step."""
    from ..models.base import load_base
    from .train import build_video_unet

    cfg = config.resolved()
    cache = load_cache_info(cfg.data)
    base = load_base(cfg.base)
    auto = cfg.gradient_checkpointing == "auto"
    cfg = resolve_checkpointing(cfg, base.unet.config, cache["latent_shape"][-1])
    video, _ = build_video_unet(cfg, base)
    options = memory_options(cfg, video.unet.config, cache["latent_shape"][-1])
    optimizer = options["optimizer"]
    memory = estimate_training_memory(batch_size=cfg.batch_size, frames=cfg.frames, **options)
    budget, card = gpu_budget()
    most = largest_frame_count(USABLE_SHARE * budget, batch_size=cfg.batch_size, **options)
    advice = memory_warning(cfg, video.unet.config, cache["latent_shape"][-1], budget, memory["total_gib"])
    lines = [
        json.dumps(cfg.to_dict(), indent=2),
        *([auto_choices(config, cfg)] if auto_choices(config, cfg) else []),
        video.format_parameter_summary(),
        f"estimated peak GPU memory per process: {memory['total_gib']:.1f} GiB "
        f"(weights {memory['weights_gib']:.1f}, gradients {memory['gradients_gib']:.1f}, optimizer "
        f"{memory['optimizer_gib']:.1f} [{optimizer}], activations {memory['activations_gib']:.1f}, "
        f"recompute {memory['recompute_gib']:.1f}, transient {memory['transient_gib']:.1f}) "
        f"for batch {cfg.batch_size} x {cfg.frames} frames of "
        f"{cache['latent_shape'][-1]}x{cache['latent_shape'][-2]} latents, {_precision(cfg)}, "
        f"gradient checkpointing {cfg.gradient_checkpointing}{' (auto: the fastest that fits)' if auto else ''}"
        f"{f', compiled ({cfg.compile})' if cfg.compile != 'off' else ''}; "
        "gradients fill in as backward frees activations, so the total is not the sum of the parts",
        f"estimated most frames at batch {cfg.batch_size} within {budget:.1f} GiB ({card}; planning for "
        f"{USABLE_SHARE:.0%} of it, the slack the H100 measurements needed): {most}"
        + (f" (the motion modules take at most {video.config.motion_max_seq_length})" if video.animatediff else ""),
    ] + ([advice] if advice else [])
    if cfg.lora_rank:  # LoRA's measured peak ran above this estimate by more than the 15 % it keeps elsewhere
        lines.append("with --lora-rank the estimate has come out below the measured peak (BENCHMARKS.md, "
                     "\"The AnimateDiff design and MotionLoRA\"): plan for a quarter more")
    return "\n".join(lines)
