"""`sdvideo train --dry-run`: what a run would do, without doing it."""

from __future__ import annotations

import json

from ..data.dataset import load_cache_info
from .config import TrainConfig
from .memory_estimate import estimate_training_memory
from .optim import resolve_optimizer


def describe(config: TrainConfig) -> str:
    """Resolved options, parameter counts and the estimated peak GPU memory of one training step."""
    from .train import build_video_unet

    cfg = config.resolved()
    cache = load_cache_info(cfg.data)
    video, _ = build_video_unet(cfg)
    optimizer = resolve_optimizer(cfg.optimizer, "cuda")
    precision = cfg.mixed_precision if cfg.mixed_precision != "no" else "fp32"
    memory = estimate_training_memory(
        dict(video.unet.config), cfg.temporal, cfg.batch_size, cfg.frames, cache["latent_shape"][-1],
        mixed_precision="bf16" if precision == "fp32" and cfg.device == "cuda" else precision,
        optimizer=optimizer, train="temporal" if cfg.train != "all" else "all",
        gradient_checkpointing=cfg.gradient_checkpointing, compiled=cfg.compile,
    )
    lines = [
        json.dumps(cfg.to_dict(), indent=2),
        video.format_parameter_summary(),
        f"estimated peak GPU memory per process: {memory['total_gib']:.1f} GiB "
        f"(weights {memory['weights_gib']:.1f}, gradients {memory['gradients_gib']:.1f}, optimizer "
        f"{memory['optimizer_gib']:.1f} [{optimizer}], activations {memory['activations_gib']:.1f}, "
        f"recompute {memory['recompute_gib']:.1f}, transient {memory['transient_gib']:.1f}) "
        f"for batch {cfg.batch_size} x {cfg.frames} frames of "
        f"{cache['latent_shape'][-1]}x{cache['latent_shape'][-2]} latents, {precision}, "
        f"gradient checkpointing {cfg.gradient_checkpointing}{', compiled' if cfg.compile else ''}; "
        "gradients fill in as backward frees activations, so the total is not the sum of the parts",
    ]
    return "\n".join(lines)
