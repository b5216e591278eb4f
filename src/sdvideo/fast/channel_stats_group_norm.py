"""GroupNorm from per-channel statistics, for compiled inference on channels-last activations.

Inductor compiles `F.group_norm` as its reference decomposition: a Welford reduction per (sample, group)
over the group's channels and pixels. On a channels-last map a group's 10 channels (320 of them in 32
groups) are 20 contiguous bytes every 640: each program reads short runs far apart, and at the 64 x 64
level of a guided 16-frame call those statistics take longer than a read of the whole map. With SiLU, this
form takes less time than that decomposition on maps from 16 x 16 up (BENCHMARKS.md).

Here the reduction runs over pixels only, per (sample, channel): on channels-last memory consecutive
channels are consecutive addresses, so every load is coalesced. The groups' moments follow exactly from
their channels' (each channel has the same number of pixels): the group mean is the channels' mean, the
group variance the mean of channel variances plus the variance of channel means (law of total
variance) -- both in fp32, from Welford's per-channel moments, with no sum-of-squares cancellation.

`install_channel_stats_group_norm(module, devices, min_pixels)` switches every `nn.GroupNorm` inside `module`
in place (same parameters and state dict); the form applies inside compiled graphs without autograd on those
devices, and everything else (eager calls, training, maps under `min_pixels`, other devices) runs
`nn.GroupNorm`'s own kernel. Applied by `sdvideo.fast.enable_fast_inference`.
"""

from __future__ import annotations

import torch
from torch import nn

DEVICES = frozenset({"cuda"})  # where the form applies by default (tests pass "cpu" too)
# Smaller maps keep nn.GroupNorm: its two kernels beat this form's three there (at 8 x 8 with SiLU; from
# 16 x 16 up this form is faster, BENCHMARKS.md).
MIN_PIXELS = 256


def supported(x: torch.Tensor, devices=DEVICES, min_pixels: int = MIN_PIXELS) -> bool:
    """Compiled inference (no autograd) on one of `devices`, on a (batch, channels, *spatial) input of at
    least `min_pixels` positions per channel."""
    if x.ndim < 3 or x.device.type not in devices or torch.is_grad_enabled():
        return False
    return torch.compiler.is_compiling() and x[0, 0].numel() >= min_pixels


def group_norm_from_channel_stats(
    x: torch.Tensor, num_groups: int, weight: torch.Tensor | None, bias: torch.Tensor | None, eps: float
) -> torch.Tensor:
    """`F.group_norm(x.float(), num_groups, weight, bias, eps)` computed from per-channel moments.

    x: (batch, channels, *spatial) in any memory layout; returns float32 of x's shape (and layout, where
    the compiler keeps it)."""
    n, c = x.shape[:2]
    xf = x.float()
    var_c, mean_c = torch.var_mean(xf, dim=tuple(range(2, x.ndim)), correction=0)  # (n, c) each
    mean_c, var_c = mean_c.view(n, num_groups, -1), var_c.view(n, num_groups, -1)  # (n, groups, c / groups)
    mean_g = mean_c.mean(-1, keepdim=True)  # (n, groups, 1)
    var_g = (var_c + (mean_c - mean_g).square()).mean(-1, keepdim=True)  # law of total variance
    scale = torch.rsqrt(var_g + eps).expand(n, num_groups, c // num_groups)  # (n, groups, c / groups)
    if weight is not None:
        scale = scale * weight.float().view(num_groups, -1)
    per_channel = (n, c) + (1,) * (x.ndim - 2)
    out = (xf - mean_g.expand_as(scale).reshape(per_channel)) * scale.reshape(per_channel)
    return out + bias.float().view(c, *per_channel[2:]) if bias is not None else out


class ChannelStatsGroupNorm(nn.GroupNorm):
    """`nn.GroupNorm` that normalises from per-channel statistics where `supported` (on `devices`, for maps of
    at least `min_pixels` positions; both set by `install_channel_stats_group_norm`)."""

    devices: frozenset[str] = DEVICES
    min_pixels: int = MIN_PIXELS

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if not supported(input, self.devices, self.min_pixels):
            return super().forward(input)
        out = group_norm_from_channel_stats(input, self.num_groups, self.weight, self.bias, self.eps)
        # As F.group_norm: float32 under CUDA's autocast (which lists group_norm among its fp32 ops; CPU's
        # autocast does not), else the input's dtype.
        fp32 = input.device.type == "cuda" and torch.is_autocast_enabled("cuda")
        return out if fp32 else out.to(input.dtype)


def install_channel_stats_group_norm(module: nn.Module, devices=DEVICES, min_pixels: int = MIN_PIXELS) -> int:
    """Switch every plain `nn.GroupNorm` inside `module` to `ChannelStatsGroupNorm` in place, taking the form on
    `devices` for maps of at least `min_pixels` positions; returns how many were switched (installing again only
    sets the two)."""
    count = 0
    for child in module.modules():
        if type(child) is nn.GroupNorm:
            child.__class__ = ChannelStatsGroupNorm
            count += 1
        if type(child) is ChannelStatsGroupNorm:
            child.devices, child.min_pixels = frozenset(devices), min_pixels
    return count
