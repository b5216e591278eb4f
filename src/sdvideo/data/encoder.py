"""VAE encoding of frame batches on the best device: CUDA in float16 when present, else CPU float32.

The VAE keeps the default (contiguous NCHW) layout: on an H100, channels-last encoded 30 % fewer
frames/s at 512 px (bench/bench_data.py, BENCHMARKS.md). A batch whose half-precision latents are not
finite (float16 overflow) is encoded again by a float32 copy of the VAE, made on first need.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch

from ..fast.cudnn_benchmark import benchmark_cudnn_algorithms


def pick_device(device: str | torch.device | None = None,
                dtype: torch.dtype | None = None) -> tuple[torch.device, torch.dtype]:
    """(device, dtype) to encode with: default cuda + float16 when available, else cpu + float32."""
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if dtype is None:
        dtype = torch.float16 if device.type == "cuda" else torch.float32
    return device, dtype


def frames_to_tensor(frames: np.ndarray) -> torch.Tensor:
    """uint8 (T, H, W, 3) -> float (T, 3, H, W) in [-1, 1], the VAE's input range."""
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be uint8 (T, H, W, 3), got {frames.shape}")
    return torch.tensor(np.asarray(frames)).permute(0, 3, 1, 2).float().div(127.5).sub(1)


@torch.inference_mode()
def encode_frames(vae: Any, frames: np.ndarray, device: torch.device, dtype: torch.dtype,
                  scaling_factor: float) -> torch.Tensor:
    """uint8 (B, S, S, 3) frames -> float16 CPU latents (B, C, S/f, S/f).

    Uses the posterior mean, not a sample, so the cache is deterministic (and a resumed run
    matches an uninterrupted one); training adds its own noise anyway.
    """
    x = torch.from_numpy(frames).to(device).permute(0, 3, 1, 2)  # (B, 3, S, S) uint8, channels-last
    x = (x.to(dtype) / 127.5 - 1.0).contiguous()  # [-1, 1], NCHW like the VAE's weights
    mean = vae.encode(x).latent_dist.mean  # (B, C, h, w)
    return (mean.float() * scaling_factor).to(torch.float16).cpu()


def _move(module: Any, device: torch.device, dtype: torch.dtype, memory_format: Any = None) -> None:
    """module.to(...) passing only what changes (diffusers warns on every dtype cast, even a no-op)."""
    param = next(module.parameters())
    kwargs: dict[str, Any] = {}
    if param.device != device:
        kwargs["device"] = device
    if param.dtype != dtype:
        kwargs["dtype"] = dtype
    if memory_format is not None:
        kwargs["memory_format"] = memory_format
    if kwargs:
        module.to(**kwargs)


class FrameEncoder:
    """`encoder(frames)` -> float16 CPU latents; moves `vae` to `device`/`dtype` until `close()`."""

    def __init__(self, vae: Any, device: torch.device, dtype: torch.dtype) -> None:
        self.vae, self.device, self.dtype = vae, device, dtype
        param = next(vae.parameters())
        self._restore = (param.device, param.dtype, vae.training)
        _move(vae, device, dtype)
        vae.eval()
        benchmark_cudnn_algorithms(device)  # frame batches of one size, clip after clip
        self.scaling = float(vae.config.scaling_factor)
        self._fp32: Any = None
        self.fallbacks = 0  # batches re-encoded in float32

    def __call__(self, frames: np.ndarray) -> torch.Tensor:
        latents = encode_frames(self.vae, frames, self.device, self.dtype, self.scaling)
        if self.dtype != torch.float32 and not torch.isfinite(latents).all():
            if self._fp32 is None:
                self._fp32 = copy.deepcopy(self.vae).to(torch.float32)
            self.fallbacks += 1
            latents = encode_frames(self._fp32, frames, self.device, torch.float32, self.scaling)
        return latents

    def close(self) -> None:
        """Put the VAE back where and as it was (prepare must not change the caller's model)."""
        device, dtype, training = self._restore
        _move(self.vae, device, dtype, torch.contiguous_format if self.device.type == "cuda" else None)
        self.vae.train(training)
        self._fp32 = None
