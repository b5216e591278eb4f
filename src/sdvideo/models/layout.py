"""Memory layouts at the seams of compiled regions: which layout a tensor is in, and an identity that
hands its gradient back in that layout.

Why it matters: `torch.compile` traces each region's backward with the strides the forward saw. A
gradient arriving in another layout is copied (AOTAutograd, at a region's boundary), and an extern
kernel inside the region (cuDNN's convolution backward) receives its arguments with the strides of
the traced graph and copies any that are not in its own layout. Asking for the layout inside the
region lets the compiler fuse it into the kernel that produces the tensor.
"""

from __future__ import annotations

import torch


def is_channels_last(x: torch.Tensor) -> bool:
    """Whether a (n, c, h, w) tensor is stored channels-last (and not also plainly contiguous, as when
    c, h or w is 1): the layout the temporal layers hand back to the caller."""
    return x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()


def memory_format_of(x: torch.Tensor) -> torch.memory_format:
    """channels_last (4-D), channels_last_3d (5-D) or contiguous_format."""
    if x.dim() == 4 and is_channels_last(x):
        return torch.channels_last
    if x.dim() == 5 and x.is_contiguous(memory_format=torch.channels_last_3d) and not x.is_contiguous():
        return torch.channels_last_3d
    return torch.contiguous_format


class GradientInInputLayout(torch.autograd.Function):
    """The identity, whose backward hands the gradient back in the layout of the forward input.

    Measured uses: a spatial transformer's input gradient came out of its GroupNorm backward plainly
    contiguous even when the input was channels-last, so the resnet region before it copied every such
    gradient at the region boundary (H100, 320 channels at 64 x 64, 2 x 16 frames: a resnet +
    transformer pair 33.08 -> 32.79 ms, `bench/bench_region_boundary.py`); and a compiled convolution's
    output gradient reached cuDNN's backward in the traced graph's plain layout, which copied it.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.memory_format = memory_format_of(x)
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return grad.contiguous(memory_format=ctx.memory_format)


def gradient_in_input_layout(x: torch.Tensor) -> torch.Tensor:
    """`x`, through `GradientInInputLayout` when a gradient will flow back to it."""
    return GradientInInputLayout.apply(x) if x.requires_grad else x
