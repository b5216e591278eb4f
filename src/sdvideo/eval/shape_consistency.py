"""Do things move, or are they re-drawn? Shape consistency of a clip from chained optical flow.

The failure this catches: objects that change shape from frame to frame ("trees that change shape
like in horror movies") instead of moving. Consecutive-frame warping error (`flow.py`) misses it: a
slow cross-fade between two unrelated images changes little per frame, and frame-independent
samples of one prompt can look alike frame to frame. So this compares *structure* (local contrast
patterns, not intensities) of content that the flow follows over many frames.

Tools (OpenCV Farnebäck flow, `flow.optical_flow` and `flow.warp`):

- structural dissimilarity d(p) of two images a, b at pixel p: 1 - (2 cov + C) / (var_a + var_b + C),
  with local means, variances and covariance in a Gaussian window (SSIM's contrast-structure term) of
  luma blurred slightly first (so resampling and the blur of generated samples do not count). 0:
  the same local pattern (any brightness or contrast), about 1: unrelated patterns, 2: inverted. It
  is counted only where the pixel is textured (local standard deviation of a or b above `TEXTURE`):
  flat regions (sky, blur) have no shape to compare.
- a pixel of frame s is *tracked* from frame s-1 when the backward flow lands inside frame s-1, the
  forward and backward flows agree (forward-backward check, `FB_RELATIVE`, `FB_ABSOLUTE`: excludes
  occlusions and flow that lost track) and the warped frame s-1 matches it (d < `MATCH`).
  Chaining the backward flows through tracked pixels follows content from frame t+k back to frame t.

Three scores, each aimed at one way of not moving (lower is better for all):

- redrawn: the share of the textured pixels of each frame that the previous frame, warped by the flow,
  does not explain (d >= MATCH), averaged over consecutive pairs. Content re-drawn every frame
  (frame-independent samples) scores about 0.5-0.65 (layout shared by the frames, such as a horizon,
  still matches); moving content about 0.0-0.3, the rest being motion too fast for the flow.
- drift: for gaps k (`GAPS`, each capped at T-1), the mean d between frame t+k and frame t warped onto
  it by the chained flow, over pixels tracked through all k steps whose source area did not shrink
  below `MIN_AREA` (content magnified from a few source pixels, e.g. approaching objects, is not
  compared); `drift` is the largest of these over gaps where at least `MIN_COVERAGE` of the textured
  pixels are tracked. Each step of a morph (shapes cross-fading into other shapes) is small and
  tracked, but over the clip its structure turns into an unrelated one: drift about 0.45-0.8, while
  moving content keeps its shape: about 0.0-0.3.
- jitter: 1 - the cosine between the motions of the same tracked content in consecutive steps,
  weighted by their magnitudes (`FLOW_FLOOR` keeps nearly still pixels from counting): 0 for motion
  that keeps its direction (speeding up, as approaching objects do, is fine), about 1 for unrelated
  motions, 2 for motion that reverses every frame. Frames in shuffled order (content jumping back
  and forth) score about 0.8-1.9, re-drawn frames about 1, smooth motion 0.0-0.3; a shaking camera
  raises it as well.

`score` is the largest of redrawn / MAX_REDRAWN, drift / MAX_DRIFT and jitter / MAX_JITTER (0.4, 0.38
and 0.55, each about halfway between the moving and the failing ranges above): below 1 the clip is
`consistent` (lower is better). A still clip (one frame repeated) scores 0 and is consistent:
it does not change shape; `flow.py`'s flow magnitude is the metric that catches stillness. A clip with
no textured pixels also scores 0 (nothing to judge; see `textured`).

Limits: Farnebäck (as set in `flow.py`) loses weakly textured content that moves more than a few
pixels a frame, such as the road near the bottom of a driving clip; what it loses raises `redrawn`
and shortens the spans over which drift is measured, so a slow morph of content that moves fast (the
driving scene at 5 frames a second) is caught only in part, while at 20 frames a second it is. The
thresholds and the ranges above come from the procedural driving scene (`demo/driving_scene.py`) at 64
and 128 px, 8 and 16 frames, 5 to 20 frames a second (tests/test_shape_consistency.py).

    shape_consistency(frames)["score"]           # uint8 (T, H, W, 3), T >= 3
    summarize_shape_consistency([clip, ...])     # mean, std, per clip, share consistent
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from .flow import _cv2, optical_flow, to_gray, warp

GAPS = (1, 2, 4, 8, 16)  # frame gaps over which drift is measured (each capped at T - 1)
REFERENCE_SIZE = 64.0  # PRE_BLUR and WINDOW are pixels of a 64 px frame, scaled with the frame size
PRE_BLUR = 1.0  # Gaussian blur (sigma) of the luma before any comparison
WINDOW = 3.0  # Gaussian window (sigma) of the local means, variances and covariance
TEXTURE = 6.0 / 255.0  # local standard deviation (intensities in [0, 1]) below which a pixel is flat
MATCH = 0.4  # structural dissimilarity below which a pixel matches
FB_RELATIVE, FB_ABSOLUTE = 0.01, 0.5  # |B + F(p + B)|^2 < FB_RELATIVE (|B|^2 + |F|^2) + FB_ABSOLUTE px^2
MIN_AREA = 0.5  # compare a tracked pixel only if its source area (Jacobian of the chain) is above this
MIN_COVERAGE = 0.05  # a gap counts for drift only if this share of the textured pixels is tracked
FLOW_FLOOR = 0.5  # pixels: added (squared) to the jitter's weights so nearly still pixels do not count

MAX_REDRAWN = 0.4
MAX_DRIFT = 0.38
MAX_JITTER = 0.55


def thresholds() -> dict[str, float]:
    """The largest value of each score a consistent clip may have (for reports)."""
    return dict(redrawn=MAX_REDRAWN, drift=MAX_DRIFT, jitter=MAX_JITTER)


def _blur(image: np.ndarray, sigma: float) -> np.ndarray:
    return _cv2().GaussianBlur(image, (0, 0), sigma)


def _dissimilarity(a: np.ndarray, b: np.ndarray, window: float) -> tuple[np.ndarray, np.ndarray]:
    """float32 (H, W) images -> (d (H, W) in [0, 2], textured bool (H, W)); see the module docstring."""
    c = TEXTURE**2
    ma, mb = _blur(a, window), _blur(b, window)
    va = np.maximum(_blur(a * a, window) - ma * ma, 0.0)
    vb = np.maximum(_blur(b * b, window) - mb * mb, 0.0)
    cov = _blur(a * b, window) - ma * mb
    return 1.0 - (2.0 * cov + c) / (va + vb + c), np.maximum(va, vb) > c


def _area(flow: np.ndarray) -> np.ndarray:
    """Jacobian determinant (H, W) of p -> p + flow(p), flow (H, W, 2): source area per target pixel."""
    dxx, dxy = np.gradient(flow[..., 0], axis=1), np.gradient(flow[..., 0], axis=0)
    dyx, dyy = np.gradient(flow[..., 1], axis=1), np.gradient(flow[..., 1], axis=0)
    return (1.0 + dxx) * (1.0 + dyy) - dxy * dyx


def _fb_consistent(back: np.ndarray, forward_at_source: np.ndarray) -> np.ndarray:
    """Forward-backward check: backward flow (H, W, 2) and the forward flow read where it lands -> bool (H, W)."""
    mismatch = np.sum((back + forward_at_source) ** 2, axis=-1)
    magnitude = np.sum(back**2, axis=-1) + np.sum(forward_at_source**2, axis=-1)
    return mismatch < FB_RELATIVE * magnitude + FB_ABSOLUTE


def _sample(mask: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """bool (H, W) mask read at p + flow(p) (bilinear, then > 0.5) -> bool (H, W)."""
    values, _ = warp(mask.astype(np.float32)[..., None], flow)
    return values.reshape(mask.shape) > 0.5


def _gaps(gaps: Iterable[int], frames: int) -> list[int]:
    gaps = list(gaps)
    if not gaps or any(int(k) != k or k < 1 for k in gaps):
        raise ValueError(f"gaps must be positive integers, got {gaps}")
    return sorted({min(int(k), frames - 1) for k in gaps})


def shape_consistency(video: np.ndarray, gaps: Iterable[int] = GAPS) -> dict[str, Any]:
    """Shape consistency of one uint8 (T, H, W, 3) clip, T >= 3 (see the module docstring).

    Returns score (lower is better, < 1 consistent), consistent, redrawn, drift, jitter, gaps (the gaps
    used), drift_per_gap and coverage_per_gap (share of the textured pixels tracked over each gap),
    textured (share of textured pixels per frame pair) and the thresholds.
    """
    video = np.asarray(video)
    if video.ndim != 4 or video.shape[-1] != 3 or video.dtype != np.uint8:
        raise ValueError(f"shape_consistency needs uint8 frames (T, H, W, 3), got {video.dtype} {video.shape}")
    t_len, h, w, _ = video.shape
    if t_len < 3:
        raise ValueError(f"shape consistency needs at least 3 frames, got {t_len}")
    gap_list = _gaps(gaps, t_len)
    scale = float(np.sqrt(h * w)) / REFERENCE_SIZE
    window = WINDOW * scale
    gray = [_blur(to_gray(f).astype(np.float32) / 255.0, PRE_BLUR * scale) for f in video]  # (H, W) each

    # back[s]: frame s -> s-1 (frame s (p) ~ frame s-1 (p + back[s](p))); fwd[s]: frame s -> s+1. (H, W, 2)
    back = [np.zeros((h, w, 2), np.float32)]  # back[0] is never used
    back += [optical_flow(video[s], video[s - 1]) for s in range(1, t_len)]
    fwd = [optical_flow(video[s], video[s + 1]) for s in range(t_len - 1)]

    # One step: is each pixel of frame s explained by frame s-1 and followed by the flow?
    tracked = [np.zeros((h, w), bool)]  # tracked[s]: bool (H, W), pixels of frame s tracked from s-1
    textured_step = [np.zeros((h, w), bool)]
    unexplained = textured_total = 0
    for s in range(1, t_len):
        b = back[s]
        predicted, inside = warp(gray[s - 1][..., None], b)
        d, textured = _dissimilarity(predicted.reshape(h, w), gray[s], window)
        f_back, _ = warp(fwd[s - 1], b)  # (H, W, 2): forward flow of frame s-1 where each pixel came from
        matched = (d < MATCH) | ~textured
        tracked.append(_fb_consistent(b, f_back) & matched & inside)
        textured_step.append(textured)
        unexplained += int((textured & inside & ~matched).sum())
        textured_total += int((textured & inside).sum())
    redrawn = unexplained / textured_total if textured_total else 0.0

    # Jitter: the same content's motion in steps s-1 -> s-2 and s -> s-1.
    jit_num = jit_den = 0.0
    for s in range(2, t_len):
        b1 = back[s]
        b0, _ = warp(back[s - 1], b1)  # (H, W, 2): the previous step's motion of the content at p
        m = tracked[s] & _sample(tracked[s - 1], b1) & textured_step[s]
        n1, n0 = np.linalg.norm(b1, axis=-1)[m], np.linalg.norm(b0, axis=-1)[m]
        dot = np.sum(b1 * b0, axis=-1)[m]
        jit_num += float(np.sum(n1 * n0 - dot))
        jit_den += float(np.sum(n1 * n0) + FLOW_FLOOR**2 * m.sum())
    jitter = jit_num / jit_den if jit_den > 0 else 0.0

    # Drift: follow frame u back through k tracked steps and compare with frame u-k.
    longest = gap_list[-1]
    d_sum = {k: 0.0 for k in gap_list}
    d_count = {k: 0 for k in gap_list}
    base = {k: 0 for k in gap_list}
    for u in range(1, t_len):
        chain = np.zeros((h, w, 2), np.float32)  # (H, W, 2): frame u (p) ~ frame u-j (p + chain(p))
        ok = np.ones((h, w), bool)  # tracked through every step so far
        inside = np.ones((h, w), bool)
        for j in range(1, min(u, longest) + 1):
            s = u - j + 1  # the step from frame s to s-1
            ok &= _sample(tracked[s], chain)
            step, step_inside = warp(back[s], chain)
            inside &= step_inside
            chain = chain + step
            if j in d_sum:
                source, _ = warp(gray[u - j][..., None], chain)
                d, textured = _dissimilarity(source.reshape(h, w), gray[u], window)
                m = ok & inside & textured & (_area(chain) > MIN_AREA)
                d_sum[j] += float(d[m].sum())
                d_count[j] += int(m.sum())
                base[j] += int((textured & inside).sum())
    drift_per_gap = [d_sum[k] / d_count[k] if d_count[k] else 0.0 for k in gap_list]
    coverage_per_gap = [d_count[k] / base[k] if base[k] else 0.0 for k in gap_list]
    counted = [dk for dk, ck in zip(drift_per_gap, coverage_per_gap) if ck >= MIN_COVERAGE]
    drift = max(counted) if counted else 0.0

    score = max(redrawn / MAX_REDRAWN, drift / MAX_DRIFT, jitter / MAX_JITTER)
    return dict(
        score=float(score),
        consistent=bool(score < 1.0),
        redrawn=float(redrawn),
        drift=float(drift),
        jitter=float(jitter),
        gaps=gap_list,
        drift_per_gap=[float(x) for x in drift_per_gap],
        coverage_per_gap=[float(x) for x in coverage_per_gap],
        textured=float(textured_total / ((t_len - 1) * h * w)),
        thresholds=thresholds(),
    )


def summarize_shape_consistency(clips: list[np.ndarray], gaps: Iterable[int] = GAPS) -> dict[str, Any]:
    """Mean and standard deviation of each score over clips, the share of consistent clips, per-clip values."""
    per_clip = [shape_consistency(c, gaps) for c in clips]
    out: dict[str, Any] = {"clips": len(per_clip), "per_clip": per_clip, "thresholds": thresholds()}
    for key in ("score", "redrawn", "drift", "jitter"):
        values = np.array([p[key] for p in per_clip])
        out[key] = float(values.mean()) if len(values) else float("nan")
        out[f"{key}_std"] = float(values.std()) if len(values) else float("nan")
    out["consistent_share"] = float(np.mean([p["consistent"] for p in per_clip])) if per_clip else float("nan")
    return out
