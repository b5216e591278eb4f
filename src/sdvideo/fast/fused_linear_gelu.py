"""A linear layer and its GELU as one cuBLASLt matmul (a bias + GELU epilogue), for half-precision inference.

The temporal feed-forward is Linear -> GELU -> Linear. Unfused, the first matmul writes its output and a
second kernel reads it back to write the GELU: at the 64 x 64 level of a guided 16-frame call that is
131,072 tokens x 640 channels written and read back, which the fused form never stores (BENCHMARKS.md).
`torch._addmm_activation(..., use_gelu=True)` runs cuBLASLt's GELU epilogue, which evaluates GELU's tanh form on the fp32 accumulator before rounding to
half precision. The tanh form is within 4.8e-4 of the exact (erf) GELU everywhere, a thirtieth of bf16's
spacing where that difference peaks (x near 2.7), and rounding once instead of twice makes the fused output
closer to the fp32 exact layer than the unfused one (BENCHMARKS.md). Training, fp32 and other devices keep the module's own Linear and exact GELU. On the CPU
`_addmm_activation` applies the exact GELU, so tests there check the plumbing against the plain path exactly.

`TemporalTransformer.feed_forward` takes this form on the device types in its `linear_gelu_devices` (empty by
default; set by `sdvideo.fast.enable_fast_inference`).
"""

from __future__ import annotations

import torch
from torch import nn

from .half_precision import runs_in_half_precision

DEVICES = frozenset({"cuda"})  # where `enable_fast_inference` turns the fused matmul on by default


def supported(x: torch.Tensor, linear: nn.Linear, devices=DEVICES) -> bool:
    """Inference (no autograd graph) in half precision (as autocast would run it) on one of `devices`."""
    if torch.is_grad_enabled() or x.device.type not in devices or linear.bias is None:
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
