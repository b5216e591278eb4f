"""Noise for video latents: independent per frame, or partly shared by all frames of a clip.

An image model's noise is independent per pixel; drawing it independently per *frame* too gives every
frame its own low-frequency noise, and at the last timesteps of SD's schedule (signal-to-noise ratio
above zero) the network reads a frame's noise mean as that frame's brightness: frames flicker.
A noise prior that shares part of the noise across frames (PYoCo, Ge et al. 2023, "mixed" noise)
keeps each frame's noise exactly standard normal, so the frozen image layers see what they were
trained on, while frames start from related noise. Training and sampling must use the same prior:
`train` records it in the run's config and sampling defaults to it.

    noise = lowpass(shared) + highpass(sqrt(share) * shared + sqrt(1 - share) * own_frame)

`share` in [0, 1): the part of the noise's variance common to all frames (PYoCo's mixed noise, share =
alpha^2 / (1 + alpha^2)). `lowpass`: spatial frequencies up to this radius (cycles per latent pixel,
0 = each channel's mean only, 0.5 = all) are shared entirely; None shares none. The split is an
orthogonal projection in Fourier space, so every frame's noise keeps unit variance.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import torch


@dataclass(frozen=True)
class NoisePrior:
    share: float = 0.0
    lowpass: float | None = None

    def __post_init__(self) -> None:
        if not (0.0 <= self.share < 1.0):
            raise ValueError(f"noise share must be in [0, 1), got {self.share}")
        if self.lowpass is not None and not (0.0 <= self.lowpass <= 0.75):
            raise ValueError(f"noise lowpass must be in [0, 0.75] cycles per pixel or None, got {self.lowpass}")

    @property
    def independent(self) -> bool:
        return self.share == 0.0 and self.lowpass is None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, value: dict[str, Any] | None) -> "NoisePrior":
        return cls(**(value or {}))

    def describe(self) -> str:
        if self.independent:
            return "independent per frame"
        parts = [f"{self.share:g} of the variance shared by all frames"] if self.share else []
        if self.lowpass is not None:
            parts.append("frame means shared" if self.lowpass == 0 else
                         f"spatial frequencies up to {self.lowpass:g} cycles/pixel shared")
        return ", ".join(parts)


def lowpass_mask(h: int, w: int, cutoff: float, device: torch.device) -> torch.Tensor:
    """(h, w) float mask of the 2-D FFT bins whose frequency radius is <= cutoff (cycles per pixel).

    Symmetric in +-k, so masking a real signal's spectrum gives a real signal (an orthogonal projection).
    """
    fy = torch.fft.fftfreq(h, device=device).abs()
    fx = torch.fft.fftfreq(w, device=device).abs()
    radius = (fy[:, None] ** 2 + fx[None, :] ** 2).sqrt()
    return (radius <= cutoff + 1e-9).float()


def mix_frame_noise(own: torch.Tensor, shared: torch.Tensor, prior: NoisePrior) -> torch.Tensor:
    """own (b, c, f, h, w) and shared (b, c, 1, h, w) standard normal -> (b, c, f, h, w) noise of the prior."""
    if prior.independent:
        return own
    mixed = own
    if prior.share:
        mixed = math.sqrt(prior.share) * shared + math.sqrt(1.0 - prior.share) * own
    if prior.lowpass is None:
        return mixed
    h, w = own.shape[-2:]
    mask = lowpass_mask(h, w, prior.lowpass, own.device)  # (h, w)
    spectrum = torch.fft.fft2(mixed.float()) * (1 - mask) + torch.fft.fft2(shared.float()) * mask
    return torch.fft.ifft2(spectrum).real.to(own.dtype)


def video_noise(shape: Sequence[int], prior: NoisePrior, generator: torch.Generator | None = None,
                device: torch.device | str | None = None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(b, c, f, h, w) noise of `prior` drawn from one generator (on the generator's device, then moved).

    Independent noise draws exactly what `torch.randn(shape)` would, so runs without a prior are unchanged.
    """
    where = generator.device if generator is not None else (device or "cpu")
    own = torch.randn(tuple(shape), generator=generator, device=where)
    if prior.independent or len(shape) != 5:
        return own.to(device or where, dtype)
    shared = torch.randn((shape[0], shape[1], 1, *shape[3:]), generator=generator, device=where)
    return mix_frame_noise(own, shared, prior).to(device or where, dtype)
