"""Does a clip's optical flow look like a camera driving forward? (The ego-motion check.)

For a camera moving forward, the image of a static point at depth Z moves away from the focus of
expansion (FOE) at a rate |p - FOE| * (dZ / Z): every flow vector points outwards, and since
|p - FOE| itself grows as 1/Z, near things (the bottom and sides of the frame) move faster than far
things near the FOE. A clip agrees when both hold:

- expansion: of the flow (forward flow, weighted by its magnitude, only where something moves), the
  share pointing away from the FOE (cosine with the outward direction > 0) is at least
  `MIN_EXPANSION`; random or shape-changing motion scores about 0.5, driving backwards about 0;
- parallax: mean flow magnitude in the outer part of the frame (radial distance from the FOE over
  half the largest) is at least `MIN_PARALLAX` times that of the inner part (under a quarter).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..demo.driving_scene import foe as scene_foe
from .flow import optical_flow

MIN_EXPANSION = 0.65
MIN_PARALLAX = 1.3
MIN_FLOW = 0.1  # pixels per frame: below this a pixel counts as not moving


def thresholds() -> dict[str, float]:
    """The scores a clip must reach to agree with forward ego-motion (for reports)."""
    return dict(expansion=MIN_EXPANSION, parallax=MIN_PARALLAX)


def flow_field_agreement(video: np.ndarray, foe: tuple[float, float] | None = None) -> dict[str, Any]:
    """Score a uint8 (T, H, W, 3) clip (T >= 2) against forward motion from `foe` (x, y) in pixels.

    foe defaults to the driving scene's (centre column, horizon row). Returns expansion, parallax
    (outer / inner mean flow), mean_cosine, the thresholds and `agrees`.
    """
    video = np.asarray(video)
    if video.ndim != 4 or video.shape[-1] != 3 or len(video) < 2:
        raise ValueError(f"the ego-motion check needs uint8 frames (T >= 2, H, W, 3), got {video.shape}")
    t, h, w, _ = video.shape
    if foe is None:
        fx, fy = scene_foe(w)
        fy = fy * h / w
    else:
        fx, fy = foe
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    rx, ry = xs - fx, ys - fy  # outward direction from the FOE, (H, W) each
    radius = np.hypot(rx, ry)
    ux, uy = rx / np.maximum(radius, 1e-6), ry / np.maximum(radius, 1e-6)
    outer, inner = radius > 0.5 * radius.max(), radius < 0.25 * radius.max()

    outward = total = cos_sum = moving_n = 0.0
    outer_mag, inner_mag = [], []
    for i in range(t - 1):
        flow = optical_flow(video[i], video[i + 1])  # forward: where each pixel of frame i goes
        mag = np.hypot(flow[..., 0], flow[..., 1])
        moving = mag > MIN_FLOW
        cos = (flow[..., 0] * ux + flow[..., 1] * uy) / np.maximum(mag, 1e-6)
        outward += float((mag * (cos > 0))[moving].sum())
        total += float(mag[moving].sum())
        cos_sum += float(cos[moving].sum())
        moving_n += float(moving.sum())
        outer_mag.append(mag[outer].mean())
        inner_mag.append(mag[inner].mean())
    expansion = outward / total if total > 0 else 0.0
    parallax = float(np.mean(outer_mag) / max(np.mean(inner_mag), 1e-6))
    return dict(
        expansion=float(expansion),
        parallax=parallax,
        mean_cosine=cos_sum / moving_n if moving_n else 0.0,
        moving_share=moving_n / ((t - 1) * h * w),
        agrees=bool(expansion >= MIN_EXPANSION and parallax >= MIN_PARALLAX),
        thresholds=thresholds(),
    )


def agreement_rate(clips: list[np.ndarray], foe: tuple[float, float] | None = None) -> dict[str, Any]:
    """Fraction of clips whose flow agrees with forward ego-motion, and each clip's scores."""
    scores = [flow_field_agreement(c, foe) for c in clips]
    rate = float(np.mean([s["agrees"] for s in scores])) if scores else float("nan")
    return dict(rate=rate, clips=len(scores), per_clip=scores)
