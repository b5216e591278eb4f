"""Motion statistics of a clip from dense optical flow (OpenCV Farnebäck: no model weights).

For each pair of consecutive frames (t, t+1) the backward flow F (from frame t+1 to frame t) says
where every pixel of frame t+1 came from in frame t. Warping frame t by F predicts frame t+1; what
the prediction misses is what motion cannot explain:

- warp_error: mean |frame t+1 - warp(frame t)| over pixels whose source lies inside the frame
  (intensities in [0, 1]): shapes that change instead of moving.
- flicker: |mean of (frame t+1 - warp(frame t))|, the signed residual averaged over the frame:
  brightness that jumps from frame to frame once motion is compensated.
- flow_magnitude: mean |F| in pixels per frame: how much moves.

Real clips are the reference: a good video model has warp error and flicker close to theirs,
while frame-independent sampling (no temporal layers) has much higher values.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# Farnebäck parameters: pyramid scale, levels, window, iterations, poly_n, poly_sigma, flags.
# Three levels of a 0.5 pyramid follow motions of ~8 px at 128 px frames.
FARNEBACK = dict(pyr_scale=0.5, levels=3, winsize=15, iterations=3, poly_n=5, poly_sigma=1.2, flags=0)


def _cv2() -> Any:
    try:
        import cv2
    except ImportError:
        raise ImportError("motion statistics need OpenCV: pip install opencv-python-headless "
                          "(or pip install 'sdvideo[eval]')") from None
    return cv2


def to_gray(frame: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3) RGB -> uint8 (H, W) luma."""
    return _cv2().cvtColor(np.ascontiguousarray(frame), _cv2().COLOR_RGB2GRAY)


def optical_flow(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Dense flow float32 (H, W, 2) (dx, dy) with first(p) ~ second(p + flow(p)), uint8 RGB frames.

    optical_flow(prev, next) is the forward flow (where each pixel of prev goes); optical_flow(next,
    prev) the backward flow (where each pixel of next came from).
    """
    cv2 = _cv2()
    return cv2.calcOpticalFlowFarneback(to_gray(first), to_gray(second), None, **FARNEBACK)


def warp(frame: np.ndarray, flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """frame float32 (H, W, C) sampled at p + flow(p) -> (warped (H, W, C), valid bool (H, W))."""
    cv2 = _cv2()
    h, w = flow.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    mx, my = gx + flow[..., 0], gy + flow[..., 1]
    warped = cv2.remap(frame, mx, my, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    valid = (mx >= 0) & (mx <= w - 1) & (my >= 0) & (my <= h - 1)
    return warped.reshape(frame.shape), valid


def pair_stats(prev: np.ndarray, nxt: np.ndarray) -> dict[str, float]:
    """Statistics of one frame pair, uint8 (H, W, 3) each (see the module docstring)."""
    back = optical_flow(nxt, prev)  # (H, W, 2): nxt(p) ~ prev(p + back(p))
    a = prev.astype(np.float32) / 255.0
    b = nxt.astype(np.float32) / 255.0
    predicted, valid = warp(a, back)
    if not valid.any():
        valid = np.ones_like(valid)
    residual = (b - predicted)[valid]  # (n, 3)
    return dict(
        warp_error=float(np.abs(residual).mean()),
        flicker=float(abs(residual.mean())),
        flow_magnitude=float(np.linalg.norm(back, axis=-1).mean()),
    )


def motion_stats(video: np.ndarray) -> dict[str, float]:
    """Mean of `pair_stats` over consecutive frames of a uint8 (T, H, W, 3) clip (T >= 2)."""
    video = np.asarray(video)
    if video.ndim != 4 or video.shape[-1] != 3 or video.dtype != np.uint8:
        raise ValueError(f"motion_stats needs uint8 frames (T, H, W, 3), got {video.dtype} {video.shape}")
    if len(video) < 2:
        raise ValueError(f"motion statistics need at least 2 frames, got {len(video)}")
    pairs = [pair_stats(video[t], video[t + 1]) for t in range(len(video) - 1)]
    return {k: float(np.mean([p[k] for p in pairs])) for k in pairs[0]}


def summarize(clips: list[np.ndarray]) -> dict[str, Any]:
    """Mean and standard deviation of each statistic over clips, plus the per-clip values."""
    per_clip = [motion_stats(c) for c in clips]
    out: dict[str, Any] = {"clips": len(per_clip), "per_clip": per_clip}
    for key in ("warp_error", "flicker", "flow_magnitude"):
        values = np.array([p[key] for p in per_clip])
        out[key] = float(values.mean()) if len(values) else float("nan")
        out[f"{key}_std"] = float(values.std()) if len(values) else float("nan")
    return out
