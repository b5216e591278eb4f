"""Known frames at inference: frame interpolation, video extension and image-to-video.

A `FrameCondition` holds the clean latents of the frames that are given and which frames those are.
The sampler keeps them in one of two ways:

- "mask": a model trained with `--task` (`VideoUNet(condition_channels=c + 1)`) gets the known
  latents and the mask as extra input channels and fills the rest itself (Make-A-Video);
- "replace": any model, no retraining: before every UNet call the known frames' latents are replaced
  by the real latents noised to the current timestep with the scheduler's own `add_noise`, so the
  unknown frames are denoised in agreement with them (replacement guidance, as in inpainting).

Either way the known frames are pasted back exactly at the end, so they come out unchanged (up to
the VAE's reconstruction).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ..data.encoder import frames_to_tensor
from ..data.video_io import resize_center_crop
from ..models.frame_conditioning import pack_condition

METHODS = ("auto", "mask", "replace")


@dataclass
class FrameCondition:
    latents: torch.Tensor  # (b, c, f, h, w) clean latents (VAE-scaled); only the known frames matter
    known: torch.Tensor  # (f,) bool, True where a frame is given

    def __post_init__(self) -> None:
        if self.latents.ndim != 5 or self.known.shape != (self.latents.shape[2],):
            raise ValueError(f"FrameCondition needs latents (b, c, f, h, w) and known (f,), got "
                             f"{tuple(self.latents.shape)} and {tuple(self.known.shape)}")
        self.known = self.known.to(torch.bool)

    @property
    def frames(self) -> int:
        return int(self.latents.shape[2])

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> "FrameCondition":
        return replace(self, latents=self.latents.to(device, dtype), known=self.known.to(device))

    def expand(self, batch: int) -> "FrameCondition":
        """The same known frames for every video of a batch of `batch`."""
        if self.latents.shape[0] == batch:
            return self
        if self.latents.shape[0] != 1:
            raise ValueError(f"known frames for {self.latents.shape[0]} videos cannot serve a batch of {batch}")
        return replace(self, latents=self.latents.expand(batch, -1, -1, -1, -1))

    def channels(self) -> torch.Tensor:
        """(b, c + 1, f, h, w): the masked-conditioning input (same layout as training)."""
        return pack_condition(self.latents, self.known)

    def replace_known(self, latents: torch.Tensor, noise: torch.Tensor, scheduler: Any,
                      t: torch.Tensor | None) -> torch.Tensor:
        """latents (b, c, f, h, w) with the known frames set to the real ones noised to timestep t.

        t None: the clean latents (the final paste).
        """
        target = self.latents if t is None else scheduler.add_noise(self.latents, noise, t.reshape(1))
        mask = self.known.to(latents.device).view(1, 1, -1, 1, 1)
        return torch.where(mask, target.to(latents.dtype), latents)


def resolve_method(method: str, condition_channels: int) -> str:
    """"mask" for a model with condition channels, else "replace" ("auto"); checks the choice."""
    if method not in METHODS:
        raise ValueError(f"unknown conditioning method {method!r}; choose one of {', '.join(METHODS)}")
    if method == "auto":
        return "mask" if condition_channels else "replace"
    if method == "mask" and not condition_channels:
        raise ValueError("--condition mask needs a model trained with --task (condition channels); "
                         "use --condition replace")
    return method


# ---------------------------------------------------------------------- layouts of known frames
def image_condition(image: torch.Tensor, frames: int) -> FrameCondition:
    """Image-to-video: image latents (b, c, h, w) or (b, c, 1, h, w) as frame 0 of `frames`."""
    if frames < 2:
        raise ValueError(f"image-to-video needs at least 2 frames, got {frames}")
    first = image if image.ndim == 5 else image[:, :, None]
    latents = first.new_zeros(*first.shape[:2], frames, *first.shape[3:])
    latents[:, :, :1] = first[:, :, :1]
    known = torch.zeros(frames, dtype=torch.bool)
    known[0] = True
    return FrameCondition(latents, known)


def extension_condition(context: torch.Tensor, new_frames: int) -> FrameCondition:
    """Extension: context latents (b, c, n, h, w) followed by `new_frames` frames to generate."""
    if new_frames < 1:
        raise ValueError(f"extension needs at least 1 new frame, got {new_frames}")
    b, c, n, h, w = context.shape
    latents = torch.cat([context, context.new_zeros(b, c, new_frames, h, w)], dim=2)
    known = torch.arange(n + new_frames) < n
    return FrameCondition(latents, known)


def check_factor(factor: Any) -> int:
    if isinstance(factor, bool) or not isinstance(factor, int) or factor < 2:
        raise ValueError(f"--factor must be an integer of at least 2, got {factor}")
    return factor


def interpolation_condition(video: torch.Tensor, factor: int) -> FrameCondition:
    """Frame interpolation: latents (b, c, n, h, w) at every `factor`-th of (n - 1) * factor + 1 frames."""
    check_factor(factor)
    b, c, n, h, w = video.shape
    if n < 2:
        raise ValueError(f"interpolation needs a video of at least 2 frames, got {n}")
    frames = (n - 1) * factor + 1
    latents = video.new_zeros(b, c, frames, h, w)
    latents[:, :, ::factor] = video
    known = torch.arange(frames) % factor == 0
    return FrameCondition(latents, known)


# ---------------------------------------------------------------------- pixels <-> latents
def encode_frames(vae: Any, frames: np.ndarray, frames_per_slice: int = 8) -> torch.Tensor:
    """uint8 (T, H, W, 3) frames -> (1, c, T, h, w) VAE-scaled latents (the posterior mode).

    The VAE encodes `frames_per_slice` frames at a time, so memory does not grow with length.
    """
    param = next(vae.parameters())
    pixels = frames_to_tensor(frames)
    chunks = [
        vae.encode(chunk.to(param.device, param.dtype)).latent_dist.mode() * vae.config.scaling_factor
        for chunk in pixels.split(frames_per_slice)
    ]
    return torch.cat(chunks).transpose(0, 1).unsqueeze(0).float()  # (1, c, T, h, w)


# A still becomes one video frame (resized to the training size): larger images are refused from their
# header, before their pixels are decoded (a 15000 x 15000 PNG would take GBs of memory).
MAX_IMAGE_PIXELS = 8192 * 8192


def open_image(path: str | Path) -> Image.Image:
    """An image file as an RGB PIL image; a one-line error for anything else, or for an image of more than
    `MAX_IMAGE_PIXELS` pixels (checked from the header, before decoding)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such image file")
    limit = (f"above the limit of {MAX_IMAGE_PIXELS:,} pixels (8192 x 8192); scale it down first (it is resized "
             "to the video's size anyway)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # refused below, with our limit
            image = Image.open(p)
        with image:
            width, height = image.size
            if width * height > MAX_IMAGE_PIXELS:
                raise ValueError(f"{p}: image is {width} x {height} pixels, {limit}")
            return image.convert("RGB")
    except Image.DecompressionBombError:  # Pillow's own limit, above ours: refused while reading the header
        raise ValueError(f"{p}: image is {limit}") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise ValueError(f"{p}: not an image Pillow can read ({type(exc).__name__}); pass a .png/.jpg") from None


def load_image(path: str | Path | Image.Image, size: int) -> np.ndarray:
    """An image (file or PIL) as uint8 (size, size, 3): short side resized to `size`, center-cropped."""
    image = path if isinstance(path, Image.Image) else open_image(path)
    return resize_center_crop(image, size)
