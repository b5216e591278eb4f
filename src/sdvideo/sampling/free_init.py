"""FreeInit (Wu et al. 2023): sample, then start again from the result's low frequencies.

Training noises a clip whose frames are alike, so at the last timesteps the noisy latents still carry the clip's
shared low frequencies; sampling starts from noise without them. FreeInit closes that gap by iterating: sample a
video, diffuse it back to the last training timestep with the first iteration's noise, keep that latent's
spatio-temporal low frequencies, take the high frequencies from fresh noise, and sample again.

    pipe.enable_free_init(num_iters=3)     # as diffusers' AnimateDiff pipelines; sampling then costs 3 x the steps
    pipe.disable_free_init()

The options and their defaults are diffusers' `enable_free_init`'s: stop frequencies are fractions of the Nyquist
frequency (0.25 of it = 0.125 cycles per latent pixel or per frame), `method` the low-pass filter's shape, and
`use_fast_sampling` gives iteration i of n only (i + 1) / n of the steps (coarse to fine).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch

METHODS = ("butterworth", "gaussian", "ideal")


@dataclass(frozen=True)
class FreeInit:
    num_iters: int = 3
    use_fast_sampling: bool = False
    method: str = "butterworth"
    order: int = 4
    spatial_stop_frequency: float = 0.25
    temporal_stop_frequency: float = 0.25

    def __post_init__(self) -> None:
        if isinstance(self.num_iters, bool) or not isinstance(self.num_iters, int) or self.num_iters < 1:
            raise ValueError(f"FreeInit num_iters (--free-init) must be an integer of at least 1, got {self.num_iters!r}")
        if self.method not in METHODS:
            raise ValueError(f"FreeInit method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if self.order < 1:
            raise ValueError(f"FreeInit butterworth order must be at least 1, got {self.order}")
        for name in ("spatial_stop_frequency", "temporal_stop_frequency"):
            if not 0.0 < getattr(self, name) <= 1.0:
                raise ValueError(f"FreeInit {name} must be in (0, 1] (a fraction of the Nyquist frequency), "
                                 f"got {getattr(self, name)}")

    def steps(self, total: int, iteration: int) -> int:
        """Denoising steps of `iteration` (0-based): all of them, or a growing share with fast sampling."""
        if not self.use_fast_sampling:
            return total
        return max(1, int(total / self.num_iters * (iteration + 1)))


def low_pass_filter(frames: int, height: int, width: int, options: FreeInit,
                    device: torch.device | str = "cpu") -> torch.Tensor:
    """(frames, h, w) weights in [0, 1] on the bins of `torch.fft.fftn` over (frames, h, w); 1 at zero frequency.

    Each bin's distance from zero is measured in units of the spatial stop frequency, with the temporal axis
    stretched so that the temporal stop frequency lands at the same distance (an ellipsoid, as FreeInit's).
    """
    def axis(n: int) -> torch.Tensor:  # frequencies as fractions of Nyquist, in [-1, 1)
        return 2.0 * torch.fft.fftfreq(n, device=device)

    ft = axis(frames)[:, None, None] / options.temporal_stop_frequency
    fy = axis(height)[None, :, None] / options.spatial_stop_frequency
    fx = axis(width)[None, None, :] / options.spatial_stop_frequency
    distance2 = ft**2 + fy**2 + fx**2  # 1 on the stop ellipsoid
    if options.method == "butterworth":
        return 1.0 / (1.0 + distance2**options.order)
    if options.method == "gaussian":
        return torch.exp(-0.5 * distance2)
    return (distance2 <= 1.0).float()


def reinitialize(clean: torch.Tensor, first_noise: torch.Tensor, fresh_noise: torch.Tensor, alpha_bar_last: float,
                 options: FreeInit) -> torch.Tensor:
    """The next iteration's starting noise, (b, c, f, h, w) float32.

    clean: the last iteration's clean latents; first_noise: the first iteration's starting noise (scaled to unit
    variance); fresh_noise: new noise for the high frequencies. `clean` is diffused to the last training timestep
    (cumulative alpha `alpha_bar_last`) with `first_noise`, and its low frequencies replace fresh_noise's.
    """
    a = torch.tensor(alpha_bar_last, dtype=torch.float32)
    first_noise, fresh_noise = (n.to(clean.device, torch.float32) for n in (first_noise, fresh_noise))  # CPU-drawn
    diffused = a.sqrt() * clean.float() + (1 - a).sqrt() * first_noise
    keep = low_pass_filter(*clean.shape[-3:], options, device=clean.device)  # (f, h, w), broadcasts over (b, c)
    dims = (-3, -2, -1)
    spectrum = torch.fft.fftn(diffused, dim=dims) * keep + torch.fft.fftn(fresh_noise, dim=dims) * (1 - keep)
    return torch.fft.ifftn(spectrum, dim=dims).real


def sample_with_free_init(denoise: Callable[[torch.Tensor, int], torch.Tensor], first_noise: torch.Tensor,
                          draw_noise: Callable[[], torch.Tensor], scheduler: Any, steps: int,
                          options: FreeInit) -> torch.Tensor:
    """Run `options.num_iters` samplings; returns the last one's clean latents (b, c, f, h, w).

    denoise(start_noise, steps) -> clean latents: one whole sampling (`sampler.denoise_video`).
    first_noise: the first iteration's starting noise; draw_noise() -> fresh noise of the same shape and prior.
    scheduler: its `alphas_cumprod` gives the noise level of the last training timestep.
    """
    alpha_bar_last = float(scheduler.alphas_cumprod[-1])
    start, clean = first_noise, None
    for iteration in range(options.num_iters):
        if iteration:
            start = reinitialize(clean, first_noise, draw_noise(), alpha_bar_last, options).to(first_noise)
        clean = denoise(start, options.steps(steps, iteration))
    return clean
