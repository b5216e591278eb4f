"""Masked-frame conditioning: known frames' latents and a mask as extra input channels of the UNet.

As in Make-A-Video's frame interpolation network, a video UNet with `condition_channels=k` (k = latent
channels + 1) takes, next to the noisy latents of every frame, the clean latents of the frames that
are known (zeros for the others) and a mask (1 known, 0 unknown). One mechanism covers frame
interpolation (every k-th frame known), extension (the first frames known) and image-to-video
(frame 0 known); `training/frame_masks.py` makes the training masks, `sampling/conditioning.py` the
inference ones.

The UNet's first convolution becomes `spatial(latents) + condition(extra channels)`, with the
`condition` weights zero-initialised, so a conditioned model starts as exactly the unconditioned one.
The `condition` convolution belongs to the `VideoUNet` (`video.frame_conditioning`), not to the 2-D
UNet, so `spatial_state_dict()` stays the plain image model's weights.
"""

from __future__ import annotations

import torch
from torch import nn


class FrameConditioning(nn.Module):
    """A zero-initialised convolution from the condition channels to the first conv's outputs."""

    def __init__(self, conv_in: nn.Conv2d, channels: int) -> None:
        super().__init__()
        if channels < 1:
            raise ValueError(f"condition_channels must be positive, got {channels}")
        self.channels = channels
        self.proj = nn.Conv2d(
            channels, conv_in.out_channels, conv_in.kernel_size, conv_in.stride, conv_in.padding, bias=False
        )
        nn.init.zeros_(self.proj.weight)

    def forward(self, condition: torch.Tensor) -> torch.Tensor:
        # condition: (batch * frames, channels, h, w) -> (batch * frames, conv_in.out_channels, h, w)
        return self.proj(condition.to(self.proj.weight.dtype))


class ConditionedConvIn(nn.Module):
    """The 2-D UNet's `conv_in` taking `in_channels + condition channels` inputs.

    The `FrameConditioning` is held by reference (registered on the VideoUNet, not here).
    """

    def __init__(self, spatial: nn.Conv2d, condition: FrameConditioning) -> None:
        super().__init__()
        self.spatial = spatial
        self.__dict__["condition"] = condition  # not a submodule: its weights live on the VideoUNet
        self.in_channels = spatial.in_channels + condition.channels
        self.out_channels = spatial.out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (batch * frames, in_channels + condition channels, h, w)
        n = self.spatial.in_channels
        out = self.spatial(x[:, :n])
        return out + self.condition(x[:, n:]).to(out.dtype)


def install_frame_conditioning(video: nn.Module, channels: int) -> None:
    """Wrap `video.unet.conv_in` and register `video.frame_conditioning` (once per 2-D UNet)."""
    conv = video.unet.conv_in
    if isinstance(conv, ConditionedConvIn):
        return
    condition = FrameConditioning(conv, channels).to(conv.weight.device, conv.weight.dtype)
    video.frame_conditioning = condition
    video.unet.conv_in = ConditionedConvIn(conv, condition)


def concat_conditioning(sample: torch.Tensor, conditioning: torch.Tensor | None, channels: int) -> torch.Tensor:
    """(b, c, f, h, w) latents + (b, channels, f, h, w) conditioning -> (b, c + channels, f, h, w).

    No conditioning on a conditioned model means "no frame known" (zeros); a batch of one
    conditioning is shared by every video of the batch.
    """
    if channels == 0:
        if conditioning is not None:
            raise ValueError("this VideoUNet has no condition channels (condition_channels=0); "
                             "train it with --task to use masked-frame conditioning")
        return sample
    b, _, f, h, w = sample.shape
    if conditioning is None:
        return torch.cat([sample, sample.new_zeros(b, channels, f, h, w)], dim=1)
    if conditioning.ndim != 5 or tuple(conditioning.shape[1:]) != (channels, f, h, w) \
            or conditioning.shape[0] not in (1, b):
        raise ValueError(f"conditioning must be ({b}, {channels}, {f}, {h}, {w}), got {tuple(conditioning.shape)}")
    return torch.cat([sample, conditioning.to(sample.dtype).expand(b, -1, -1, -1, -1)], dim=1)


def pack_condition(latents: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """The conditioning input: known frames' latents (zeros elsewhere) and the mask as a last channel.

    latents: (b, c, f, h, w) clean latents; known: (b, f) or (f,) bool, True where a frame is known.
    Returns (b, c + 1, f, h, w).
    """
    b, _, f, h, w = latents.shape
    mask = known.to(latents.device, latents.dtype).reshape(-1, 1, f, 1, 1).expand(b, 1, f, 1, 1)
    return torch.cat([latents * mask, mask.expand(b, 1, f, h, w)], dim=1)
