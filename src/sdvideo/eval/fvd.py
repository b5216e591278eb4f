"""Fréchet Video Distance (optional): real vs generated clips through a local I3D feature network.

FVD is the Fréchet distance between Gaussians fitted to video features of two sets:
    d² = |mu_a - mu_b|² + tr(S_a + S_b - 2 (S_a S_b)^(1/2)).
The features come from an I3D network that the user has locally as a TorchScript file (the
`i3d_torchscript.pt` of the common FVD implementations: `detector(videos, rescale=False,
resize=True, return_features=True)` with videos float (N, 3, T, H, W) in [-1, 1], giving (N, 400));
nothing is downloaded. Any TorchScript module with that call (or a plain `detector(videos)`) works.

With few videos the covariances are rank-deficient; the distance is still defined (the square root
below only needs positive semi-definite matrices) but noisy: compare runs with the same counts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch


def frechet_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """Fréchet distance between Gaussians fitted to feature rows `a` (N, d) and `b` (M, d), in float64."""
    a, b = a.double(), b.double()
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a = torch.cov(a.T) if len(a) > 1 else torch.zeros(a.shape[1], a.shape[1], dtype=a.dtype)
    cov_b = torch.cov(b.T) if len(b) > 1 else torch.zeros(b.shape[1], b.shape[1], dtype=b.dtype)
    # tr((S_a S_b)^(1/2)) = sum of sqrt(eigenvalues of S_a^(1/2) S_b S_a^(1/2)), a symmetric PSD matrix.
    vals, vecs = torch.linalg.eigh(cov_a)
    root_a = (vecs * vals.clamp(min=0).sqrt()) @ vecs.T
    middle = root_a @ cov_b @ root_a
    trace_root = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp(min=0).sqrt().sum()
    d2 = (mu_a - mu_b).square().sum() + cov_a.trace() + cov_b.trace() - 2 * trace_root
    return float(d2.clamp(min=0))


def detector_file(path: str | Path) -> Path:
    """`path` when it is a file; a one-line error naming what --fvd takes otherwise."""
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"{file}: no such I3D TorchScript file (--fvd takes a local i3d_torchscript.pt)")
    return file


def load_detector(path: str | Path, device: torch.device | str = "cpu") -> Any:
    file = detector_file(path)
    try:
        return torch.jit.load(str(file), map_location=device).eval()
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"{file}: not a TorchScript model ({first[:160]})") from None


@torch.no_grad()
def video_features(videos: Sequence[np.ndarray], detector: Any, device: torch.device | str = "cpu",
                   batch_size: int = 8) -> torch.Tensor:
    """(N, d) features of uint8 (T, H, W, 3) videos."""
    rows = []
    for start in range(0, len(videos), batch_size):
        chunk = np.stack([np.asarray(v) for v in videos[start : start + batch_size]])  # (n, T, H, W, 3)
        x = torch.from_numpy(chunk).to(device).permute(0, 4, 1, 2, 3).float() / 127.5 - 1.0  # (n, 3, T, H, W)
        try:
            feats = detector(x, rescale=False, resize=True, return_features=True)
        except (RuntimeError, TypeError):  # a detector without those keyword arguments
            feats = detector(x)
        rows.append(feats.float().reshape(len(chunk), -1).cpu())
    return torch.cat(rows)


def fvd(real: Sequence[np.ndarray], generated: Sequence[np.ndarray], path: str | Path,
        device: torch.device | str = "cpu") -> float:
    """FVD between two sets of uint8 (T, H, W, 3) videos with the I3D at `path`."""
    detector = load_detector(path, device)
    return frechet_distance(video_features(real, detector, device), video_features(generated, detector, device))
