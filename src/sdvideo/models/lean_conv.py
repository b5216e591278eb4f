"""A `Conv2d` that stores nothing for backward when its weights are frozen.

PyTorch's convolution saves its input for backward even when neither weight nor bias needs a
gradient, although the input gradient needs only the weight. With the image model frozen, that is
every spatial convolution of the UNet: at 512 px and 2 x 16 frames those saved inputs are several GiB.
`LeanConv2d` computes the same forward and the same input gradient (`convolution_backward` with
only the input gradient requested, which is what autograd runs too) but keeps only the weight.

`make_convs_lean(module)` switches every plain `nn.Conv2d` of a module to this class in place (the
parameters, their names and the state dict stay the same); a conv whose weight trains, or a call
without autograd, takes the ordinary path. A training memory path: `sdvideo.fast.enable_fast_training`
applies it to a `VideoUNet` (`sdvideo train` does).
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import nn

from .layout import gradient_in_input_layout


class _FrozenConv2dFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding, dilation, groups):  # type: ignore[override]
        ctx.save_for_backward(weight)
        ctx.conf = (x.shape, x.dtype, stride, padding, dilation, groups)
        return F.conv2d(x, weight, bias, stride, padding, dilation, groups)

    @staticmethod
    def backward(ctx, grad_out):  # type: ignore[override]
        (weight,) = ctx.saved_tensors
        shape, dtype, stride, padding, dilation, groups = ctx.conf
        # Autocast ran the forward in the grad's dtype; do the same here (weights may be fp32).
        weight = weight.to(grad_out.dtype)
        placeholder = grad_out.new_empty(1).expand(shape)  # only the shape of the input is read
        grad_in = torch.ops.aten.convolution_backward(
            grad_out, placeholder, weight, None, stride, padding, dilation, False, [0, 0], groups, [True, False, False]
        )[0]
        return grad_in.to(dtype), None, None, None, None, None, None


class LeanConv2d(nn.Conv2d):
    """`nn.Conv2d` whose backward keeps no activation when weight and bias are frozen.

    `channels_last_io` (set by `VideoUNet.to_channels_last`): inside a compiled region, the input and
    the output gradient are asked for channels-last, cuDNN's layout for this model. Inductor would otherwise
    hand `convolution_backward` its arguments in the traced graph's strides, plainly contiguous after
    a decomposed GroupNorm, and cuDNN would copy both back to channels-last (BENCHMARKS.md). Asked for in the graph, the layout is written by the kernel producing it.
    """

    channels_last_io = False

    def _channels_last_conv_forward(self, input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None):
        out = super()._conv_forward(input.contiguous(memory_format=torch.channels_last), weight, bias)
        return gradient_in_input_layout(out)

    def _conv_forward(self, input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        frozen = not weight.requires_grad and (bias is None or not bias.requires_grad)
        lean = frozen and input.requires_grad and torch.is_grad_enabled() and self.padding_mode == "zeros"
        # Under torch.compile the partitioner already decides what backward keeps (and recomputes
        # cheap conv inputs), so compiled regions take the plain path.
        if torch.compiler.is_compiling() and self.channels_last_io:
            return self._channels_last_conv_forward(input, weight, bias)
        if not lean or torch.compiler.is_compiling():
            return super()._conv_forward(input, weight, bias)
        device = input.device.type
        autocast = device in ("cuda", "cpu") and torch.is_autocast_enabled(device)
        if autocast:  # do what autocast does to F.conv2d's inputs, then keep it off inside the Function
            dtype = torch.get_autocast_dtype(device)
            input, weight = input.to(dtype), weight.to(dtype)
            bias = bias.to(dtype) if bias is not None else None
        with torch.autocast(device, enabled=False) if autocast else contextlib.nullcontext():
            return _FrozenConv2dFunction.apply(input, weight, bias, self.stride, self.padding, self.dilation, self.groups)


def make_convs_lean(module: nn.Module) -> nn.Module:
    """Turn every plain `nn.Conv2d` inside `module` into a `LeanConv2d` (in place); returns `module`."""
    for child in module.modules():
        if type(child) is nn.Conv2d:
            child.__class__ = LeanConv2d
    return module
