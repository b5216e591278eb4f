"""Exponential moving average of the trainable weights (what sampling should use)."""

from __future__ import annotations

import torch
from torch import nn


class EMA:
    """Keeps fp32 shadow copies of the parameters that train.

    The decay warms up as min(decay, (1 + step) / (10 + step)), so early averages are not dominated
    by the random initial state.
    """

    def __init__(self, model: nn.Module, decay: float = 0.999) -> None:
        self.decay = decay
        self.names = [n for n, p in model.named_parameters() if p.requires_grad]
        params = dict(model.named_parameters())
        self.shadow = {n: params[n].detach().float().clone() for n in self.names}
        self.step = 0

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.step += 1
        d = min(self.decay, (1 + self.step) / (10 + self.step))
        params = dict(model.named_parameters())
        for n in self.names:
            self.shadow[n].lerp_(params[n].detach().float(), 1 - d)

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        params = dict(model.named_parameters())
        for n in self.names:
            params[n].copy_(self.shadow[n].to(params[n].dtype))

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {f"ema.{n}": t for n, t in self.shadow.items()}

    def load_state_dict(self, tensors: dict[str, torch.Tensor], step: int) -> None:
        for n in self.names:
            self.shadow[n].copy_(tensors[f"ema.{n}"])
        self.step = step
