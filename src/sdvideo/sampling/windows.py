"""Sliding temporal windows: denoise a video of any length with the UNet seeing a bounded clip.

At every denoising step the UNet runs on overlapping windows of `window` frames; the predictions of
frames covered by several windows are averaged with triangular weights (highest at a window's
centre, lowest at its edges, where a window sees the least context), and one scheduler step is then
taken on the whole latent video. Fusing at every step (rather than stitching finished clips) lets
the windows agree. With a fixed tiling the frames where one window hands over to the next are the
same at every step; shifting the tiling by a different offset at each step (`step`, `step_shift`)
moves those hand-overs around, as AnimateDiff's "uniform" context schedule does; the samplers shift by
default, since fixed hand-overs can leave a visible step in the motion. The UNet's memory
depends only on `window`, not on the video's length; a video no longer than one window is exactly
the direct (one-call) prediction.
"""

from __future__ import annotations

from typing import Callable

import torch


def window_starts(frames: int, window: int, overlap: int, shift: int = 0) -> list[int]:
    """First frame of each window; windows are `window` frames, `overlap` shared with the next.

    shift: the tiling starts this many frames later (0 <= shift < window - overlap); the first window
    still starts at frame 0 and the last is aligned to the end, so every window is full-length.
    """
    if window < 1:
        raise ValueError(f"window must be at least 1 frame, got {window}")
    if frames <= window:
        return [0]
    if not 0 <= overlap < window:
        raise ValueError(f"window overlap must be in [0, {window - 1}] for a {window}-frame window, got {overlap}")
    stride = window - overlap
    if not 0 <= shift < stride:
        raise ValueError(f"window shift must be in [0, {stride - 1}], got {shift}")
    return sorted({0, *range(shift, frames - window, stride), frames - window})


def step_shift(step: int, window: int, overlap: int) -> int:
    """The tiling's shift at denoising step `step` (0, 1, ...): the step's bits reversed as a fraction
    (0, 1/2, 1/4, 3/4, 1/8, ...) of the stride, so that successive steps spread the hand-overs evenly."""
    fraction = int(f"{step:032b}"[::-1], 2) / 2**32
    return int(fraction * (window - overlap))


def window_weights(length: int) -> torch.Tensor:
    """(length,) triangular blending weights: 1, 2, ..., peak, ..., 2, 1."""
    index = torch.arange(length, dtype=torch.float32)
    return torch.minimum(index + 1, length - index)


def default_overlap(window: int) -> int:
    return window // 2


def windowed_prediction(
    predict: Callable[[int, int], torch.Tensor],
    frames: int,
    window: int | None,
    overlap: int | None = None,
    step: int | None = None,
) -> torch.Tensor:
    """Fuse window predictions into one (b, c, frames, h, w) prediction.

    predict(start, end): the model's prediction for frames [start, end), shaped (b, c, end - start, h, w).
    window None (or >= frames): a single call on all frames. step: the denoising step's index, to shift
    the tiling by `step_shift`; None: the fixed tiling.
    """
    if window is None or window >= frames:
        return predict(0, frames)
    overlap = default_overlap(window) if overlap is None else overlap
    shift = 0 if step is None else step_shift(step, window, overlap)
    total: torch.Tensor | None = None
    weight_sum = torch.zeros(frames)
    weights = window_weights(window)
    for start in window_starts(frames, window, overlap, shift):
        pred = predict(start, start + window)  # (b, c, window, h, w)
        if total is None:
            total = pred.new_zeros(*pred.shape[:2], frames, *pred.shape[3:])
        w = weights.to(pred.device, pred.dtype).view(1, 1, window, 1, 1)
        total[:, :, start : start + window] += pred * w
        weight_sum[start : start + window] += weights
    assert total is not None
    return total / weight_sum.to(total.device, total.dtype).view(1, 1, frames, 1, 1)
