"""A linear layer and its GELU as one cuBLASLt matmul (a bias + GELU epilogue), for half-precision inference.

The temporal feed-forward is Linear -> GELU -> Linear. Unfused, the first matmul writes its output and a
second kernel reads it back to write the GELU: at the 64 x 64 level of a guided 16-frame call that is
131,072 tokens x 640 channels, and fused it takes about 0.6 x the time (BENCHMARKS.md); over all levels
guided 16-frame sampling runs about 1 % faster. `torch._addmm_activation(..., use_gelu=True)` runs
cuBLASLt's GELU epilogue, which evaluates GELU's tanh form on the fp32 accumulator before rounding to
half precision. The tanh form is within 4.8e-4 of the exact (erf) GELU everywhere, a thirtieth of bf16's
spacing where that difference peaks (x near 2.7), and rounding once instead of twice makes the fused output
closer to the fp32 exact layer than the unfused one (largest error at all three SD levels: 0.0156 against
0.0161). Training, fp32 and other devices keep the module's own Linear and exact GELU. On the CPU
`_addmm_activation` applies the exact GELU, so tests there check the plumbing against the plain path exactly.
"""

from __future__ import annotations

import torch
from torch import nn

from .half_precision import runs_in_half_precision

DEVICES = {"cuda"}  # where `linear_gelu` takes the fused matmul; tests add "cpu"
ENABLED = True  # off: always Linear then GELU (benchmarks compare the two)


def supported(x: torch.Tensor, linear: nn.Linear) -> bool:
    """Inference (no autograd graph) in half precision (as autocast would run it) on a device in DEVICES."""
    if not ENABLED or torch.is_grad_enabled() or x.device.type not in DEVICES or linear.bias is None:
        return False  # (before the autocast queries, which fail for devices like "meta")
    return runs_in_half_precision(x)


def linear_gelu(x: torch.Tensor, linear: nn.Linear) -> torch.Tensor:
    """gelu(linear(x)) as one matmul with a bias + GELU epilogue. x: (..., in) -> (..., out)."""
    weight, bias = linear.weight, linear.bias
    if torch.is_autocast_enabled(x.device.type):  # as autocast would run the Linear
        dtype = torch.get_autocast_dtype(x.device.type)
        x, weight, bias = x.to(dtype), weight.to(dtype), bias.to(dtype)
    flat = x.reshape(-1, x.shape[-1])
    out = torch._addmm_activation(bias, flat, weight.t(), use_gelu=True)  # (tokens, out)
    return out.view(*x.shape[:-1], out.shape[-1])
