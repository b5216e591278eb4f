"""Sliding temporal windows: denoise a video of any length with the UNet seeing a bounded clip.

At every denoising step the UNet runs on overlapping windows of `window` frames; the predictions of
frames covered by several windows are averaged with triangular weights (highest at a window's
centre, lowest at its edges, where a window sees the least context), and one scheduler step is then
taken on the whole latent video. Fusing at every step (rather than stitching finished clips) lets
the windows agree, so there are no seams. The UNet's memory depends only on `window`, not on the
video's length; a video no longer than one window is exactly the direct (one-call) prediction.
"""

from __future__ import annotations

from typing import Callable

import torch


def window_starts(frames: int, window: int, overlap: int) -> list[int]:
    """First frame of each window; windows are `window` frames, `overlap` shared with the next.

    The last window is aligned to the end, so every window is full-length.
    """
    if window < 1:
        raise ValueError(f"window must be at least 1 frame, got {window}")
    if frames <= window:
        return [0]
    if not 0 <= overlap < window:
        raise ValueError(f"window overlap must be in [0, {window - 1}] for a {window}-frame window, got {overlap}")
    stride = window - overlap
    starts = list(range(0, frames - window, stride))
    return starts + [frames - window]


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
) -> torch.Tensor:
    """Fuse window predictions into one (b, c, frames, h, w) prediction.

    predict(start, end): the model's prediction for frames [start, end), shaped (b, c, end - start, h, w).
    window None (or >= frames): a single call on all frames.
    """
    if window is None or window >= frames:
        return predict(0, frames)
    overlap = default_overlap(window) if overlap is None else overlap
    total: torch.Tensor | None = None
    weight_sum = torch.zeros(frames)
    weights = window_weights(window)
    for start in window_starts(frames, window, overlap):
        pred = predict(start, start + window)  # (b, c, window, h, w)
        if total is None:
            total = pred.new_zeros(*pred.shape[:2], frames, *pred.shape[3:])
        w = weights.to(pred.device, pred.dtype).view(1, 1, window, 1, 1)
        total[:, :, start : start + window] += pred * w
        weight_sum[start : start + window] += weights
    assert total is not None
    return total / weight_sum.to(total.device, total.dtype).view(1, 1, frames, 1, 1)
