"""Optimizer choice: `auto` is 8-bit AdamW (sdvideo's fused kernel, `adamw8bit.py`) on a CUDA GPU, else AdamW."""

from __future__ import annotations

from typing import Iterable

import torch


def resolve_optimizer(name: str, device_type: str) -> str:
    """'auto' -> 'adamw8bit' on CUDA (a quarter of AdamW's state memory, as fast: `adamw8bit.py`), else 'adamw'."""
    if name == "auto":
        return "adamw8bit" if device_type == "cuda" else "adamw"
    if name not in ("adamw", "adamw8bit"):
        raise ValueError(f"--optimizer must be auto, adamw or adamw8bit, got {name!r}")
    return name


def make_optimizer(
    params: Iterable[torch.nn.Parameter], name: str, lr: float, weight_decay: float, device_type: str
) -> tuple[torch.optim.Optimizer, str]:
    """Returns the optimizer and the name of what was really built (for the saved config)."""
    params = list(params)
    if name == "adamw8bit":
        from .adamw8bit import AdamW8bit, HAVE_TRITON

        kernel = "Triton kernel" if HAVE_TRITON and device_type == "cuda" else "tensor ops"
        return AdamW8bit(params, lr=lr, weight_decay=weight_decay), f"adamw8bit (sdvideo, {kernel})"
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay), "adamw"
