"""Linear layers whose bias joins the next fused kernel instead of cuBLAS's epilogue, in compiled inference.

A `nn.Linear` with a bias runs as `addmm`, one cuBLASLt call with a bias epilogue. At the 64 x 64 level of a
guided 16-frame call the 320 -> 320 matmuls with a bias take longer than those without one in compiled
sampling (BENCHMARKS.md): cuBLAS picks another kernel for the bias form.
Inductor can split `addmm` into `mm` + an add fused into the pointwise kernel that follows, but leaves these whole.
`BiasAfterMatmulLinear` writes the split itself where it pays: inside a compiled graph (eager, the add would be
one more kernel), without autograd, in half precision: an output projection and its residual add at 64 x 64
take less time (BENCHMARKS.md). The output is the matmul rounded to half precision plus the bias, rounded
again: two roundings where `addmm` has one.

`install_bias_after_matmul(module, devices)` switches the Linears with a bias of every spatial and temporal
transformer block in place (same parameters and state dict); the others keep `nn.Linear`. Applied by
`sdvideo.fast.enable_fast_inference`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .half_precision import runs_in_half_precision

DEVICES = frozenset({"cuda"})  # where the split applies by default (tests pass "cpu" too)


def supported(x: torch.Tensor, linear: nn.Linear) -> bool:
    """Compiled inference in half precision (as autocast would run it) on one of the layer's `devices`."""
    devices = getattr(linear, "devices", DEVICES)
    if linear.bias is None or x.device.type not in devices or torch.is_grad_enabled():
        return False
    return torch.compiler.is_compiling() and runs_in_half_precision(x)


class BiasAfterMatmulLinear(nn.Linear):
    """`nn.Linear` computing x W^T, then + b as its own (fusable) op where `supported`. `devices`: the device
    types where it does (set by `install_bias_after_matmul`)."""

    devices: frozenset[str] = DEVICES

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if not supported(input, self):
            return super().forward(input)
        out = F.linear(input, self.weight)  # (..., out_features), in autocast's dtype where it is on
        return out + self.bias.to(out.dtype)


def install_bias_after_matmul(module: nn.Module, devices=DEVICES) -> int:
    """Switch the Linears with a bias inside `module`'s transformer blocks (diffusers' `BasicTransformerBlock`,
    sdvideo's `TemporalTransformer`) to `BiasAfterMatmulLinear` in place, taking the split on `devices`; returns
    how many were switched (installing again only sets `devices`)."""
    from diffusers.models.attention import BasicTransformerBlock

    from ..models.temporal_attention import TemporalTransformer

    count = 0
    for block in module.modules():
        if isinstance(block, (BasicTransformerBlock, TemporalTransformer)):
            for child in block.modules():
                if type(child) is nn.Linear and child.bias is not None:
                    child.__class__ = BiasAfterMatmulLinear
                    count += 1
                if type(child) is BiasAfterMatmulLinear:
                    child.devices = frozenset(devices)
    return count
