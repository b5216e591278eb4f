"""Optimizer choice: 8-bit AdamW where a backend exists (torchao, then bitsandbytes), else AdamW."""

from __future__ import annotations

import importlib.util
import warnings
from typing import Iterable

import torch


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def resolve_optimizer(name: str, device_type: str) -> str:
    """'auto' -> 'adamw8bit' on CUDA with a backend installed, else 'adamw'."""
    if name == "auto":
        return "adamw8bit" if device_type == "cuda" and (_has("torchao") or _has("bitsandbytes")) else "adamw"
    if name not in ("adamw", "adamw8bit"):
        raise ValueError(f"--optimizer must be auto, adamw or adamw8bit, got {name!r}")
    return name


def make_optimizer(
    params: Iterable[torch.nn.Parameter], name: str, lr: float, weight_decay: float, device_type: str
) -> tuple[torch.optim.Optimizer, str]:
    """Returns the optimizer and the name of what was really built (for the saved config)."""
    params = list(params)
    if name == "adamw8bit":
        if device_type == "cuda" and _has("torchao"):
            from torchao.optim import AdamW8bit

            return AdamW8bit(params, lr=lr, weight_decay=weight_decay), "adamw8bit (torchao)"
        if device_type == "cuda" and _has("bitsandbytes"):
            import bitsandbytes as bnb

            return bnb.optim.AdamW8bit(params, lr=lr, weight_decay=weight_decay), "adamw8bit (bitsandbytes)"
        warnings.warn(
            "8-bit AdamW needs a CUDA device and torchao or bitsandbytes; falling back to AdamW "
            "(pip install torchao to get it)",
            stacklevel=2,
        )
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay), "adamw"
