"""Make-A-Video's pseudo-3D convolution: a 1-D convolution over frames after a spatial convolution."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .layout import gradient_in_input_layout, is_channels_last


class TemporalConv(nn.Module):
    """A kernel-3 convolution across frames at every pixel, initialised as the identity.

    The weight is stored as a `Conv1d` weight (out, in, 3) and applied as a (3, 1, 1) 3-D convolution
    on the (batch, channels, frames, height, width) view, so no pixel is mixed with another pixel.
    Dirac weights and a zero bias make it an exact identity at initialisation.
    """

    def __init__(self, channels: int, kernel_size: int = 3) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"temporal kernel size must be odd, got {kernel_size}")
        self.conv = nn.Conv1d(channels, channels, kernel_size, padding=kernel_size // 2)
        nn.init.dirac_(self.conv.weight)
        nn.init.zeros_(self.conv.bias)

    def forward(self, x: torch.Tensor, num_frames: int) -> torch.Tensor:
        # x: (batch * frames, channels, height, width), frames of a video adjacent in the batch.
        return conv3d_over_frames(x, self.conv.weight.to(x.dtype), self.conv.bias.to(x.dtype), num_frames)


def conv3d_over_frames(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, num_frames: int) -> torch.Tensor:
    """The temporal convolution as a (k, 1, 1) 3-D convolution on the (batch, c, frames, h, w) view."""
    bf, c, h, w = x.shape
    video = x.view(bf // num_frames, num_frames, c, h, w).transpose(1, 2)  # (b, c, f, h, w), a view
    pad = weight.shape[2] // 2
    out = F.conv3d(video, weight[..., None, None], bias, padding=(pad, 0, 0))  # (b, c_out, f, h, w)
    if is_channels_last(x):  # keep the caller's layout (a no-op for cuDNN), in backward too (layout.py)
        out = gradient_in_input_layout(out.contiguous(memory_format=torch.channels_last_3d))
    return out.transpose(1, 2).reshape(bf, out.shape[1], h, w)
