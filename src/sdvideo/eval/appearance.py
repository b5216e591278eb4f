"""Colour, contrast, detail and variety of clips: washed-out, blurred or look-alike samples, which the flow
statistics do not see.

A video model can keep its frames consistent by drifting toward a hazy, grey average of its training scenes; the
flow measures of `flow.py` even favour that, since a low-contrast or blurred frame leaves small warping residuals.
Three numbers per frame, averaged over a clip and compared with the real clips':

- colourfulness (Hasler and Süsstrunk, 2003), on 0-255 RGB: with the opponent channels rg = R - G and
  yb = (R + G) / 2 - B, sqrt(std(rg)² + std(yb)²) + 0.3 sqrt(mean(rg)² + mean(yb)²). Grey is 0; the paper
  calls 15 slightly, 33 moderately, 45 averagely, 59 quite and 82 highly colourful.
- contrast: RMS contrast, the standard deviation of the frame's luma (0-255, Rec. 601 weights).
- detail: the mean absolute Laplacian of the luma (4 neighbours, inside a one-pixel border): fine texture, which
  blur lowers and noise raises.

A model can also collapse toward one average scene, so that every seed gives nearly the same video. Over a group
of clips:

- diversity: the mean RMS distance (0-255 RGB) between the first frames of every pair of clips (pairs of unequal
  size are skipped). The eval's real clips are different scenes and its samples seeds of one prompt, so the ratio
  is a guide rather than a like-for-like figure: samples far below the real clips' look alike.

All four are linear in the distance from grey: blending every clip halfway toward uniform grey halves them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float64)  # Rec. 601, as OpenCV's RGB2GRAY


def frame_appearance(frame: np.ndarray) -> dict[str, float]:
    """uint8 (H, W, 3) RGB frame -> its colourfulness, RMS contrast and detail (0-255 scale; detail nan below 3 x 3)."""
    rgb = frame.reshape(-1, 3).astype(np.float64)  # (H*W, 3)
    rg = rgb[:, 0] - rgb[:, 1]
    yb = 0.5 * (rgb[:, 0] + rgb[:, 1]) - rgb[:, 2]
    colourfulness = np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean())
    luma = frame.astype(np.float64) @ LUMA  # (H, W)
    laplacian = (luma[:-2, 1:-1] + luma[2:, 1:-1] + luma[1:-1, :-2] + luma[1:-1, 2:]
                 - 4 * luma[1:-1, 1:-1])  # (H - 2, W - 2)
    detail = float(np.abs(laplacian).mean()) if laplacian.size else float("nan")
    return dict(colourfulness=float(colourfulness), contrast=float(luma.std()), detail=detail)


def clip_appearance(video: np.ndarray) -> dict[str, float]:
    """Mean of `frame_appearance` over the frames of a uint8 (T, H, W, 3) clip."""
    video = np.asarray(video)
    if video.ndim != 4 or video.shape[-1] != 3 or video.dtype != np.uint8 or len(video) == 0:
        raise ValueError(f"appearance needs uint8 frames (T, H, W, 3), got {video.dtype} {video.shape}")
    frames = [frame_appearance(f) for f in video]
    return {k: float(np.mean([f[k] for f in frames])) for k in frames[0]}


def diversity(clips: list[np.ndarray]) -> float:
    """Mean RMS distance (0-255) between the first frames of each pair of equally sized clips; nan without a pair."""
    firsts = [np.asarray(c[0], dtype=np.float64) for c in clips]  # (H, W, 3) each
    distances = [np.sqrt(np.mean((a - b) ** 2)) for i, a in enumerate(firsts) for b in firsts[i + 1:]
                 if a.shape == b.shape]
    return float(np.mean(distances)) if distances else float("nan")


def summarize_appearance(clips: list[np.ndarray]) -> dict[str, Any]:
    """Mean and standard deviation of each number over clips, the per-clip values, and the clips' diversity."""
    per_clip = [clip_appearance(c) for c in clips]
    out: dict[str, Any] = {"clips": len(per_clip), "per_clip": per_clip}
    for key in ("colourfulness", "contrast", "detail"):
        values = np.array([p[key] for p in per_clip])
        out[key] = float(values.mean()) if len(values) else float("nan")
        out[f"{key}_std"] = float(values.std()) if len(values) else float("nan")
    out["diversity"] = diversity(clips)
    return out


NUMBERS = ("colourfulness", "contrast", "detail", "diversity")


def relative_to_real(appearance: dict[str, dict[str, Any]]) -> dict[str, dict[str, float]]:
    """{group: summary} with a "real" group -> {group: {number: value / real's}} (nan where real's is 0).

    Summaries written before detail and diversity were measured get no ratio for them."""
    real = appearance["real"]
    keys = [k for k in NUMBERS if k in real]
    return {g: {k: v[k] / real[k] if real[k] else float("nan") for k in keys} for g, v in appearance.items()}
