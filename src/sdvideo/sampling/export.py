"""Writing sampled videos: H.264 .mp4 (PyAV), looping .gif (Pillow) and a .png grid of frames.

Every writer takes frames as uint8 numpy (T, H, W, 3) or a float tensor/array in [0, 1] shaped
(T, 3, H, W) (see `to_uint8_frames`) and writes atomically: to `<path>.tmp` in the same folder,
then `os.replace`, so a crash never leaves a half-written file under the final name.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..atomic_files import atomic_path


def to_uint8_frames(x: Any) -> np.ndarray:
    """Frames as uint8 (T, H, W, 3).

    Accepts uint8 (T, H, W, 3), float in [0, 1] as (T, 3, H, W) or (T, H, W, 3) (torch tensors
    or numpy, clamped), a list of (H, W, 3) frames, or one frame (H, W, 3) / (3, H, W).
    """
    if hasattr(x, "detach"):  # torch.Tensor -> numpy without importing torch here
        x = x.detach().cpu()
        x = x.float().numpy() if x.is_floating_point() else x.numpy()
    elif isinstance(x, (list, tuple)):
        x = np.stack([np.asarray(f) for f in x])
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4:
        raise ValueError(f"frames must be (T, H, W, 3) or (T, 3, H, W), got shape {x.shape}")
    if x.shape[-1] != 3 and x.shape[1] in (1, 3):
        x = x.transpose(0, 2, 3, 1)  # (T, C, H, W) -> (T, H, W, C)
    if x.shape[-1] == 1:
        x = np.repeat(x, 3, axis=-1)
    if x.shape[-1] != 3:
        raise ValueError(f"frames must have 3 channels (T, H, W, 3) or (T, 3, H, W), got {x.shape}")
    if x.dtype != np.uint8:
        if np.issubdtype(x.dtype, np.floating):
            x = np.nan_to_num(x.astype(np.float32), nan=0.0)
            x = (np.clip(x, 0.0, 1.0) * 255.0).round()
        x = np.clip(x, 0, 255).astype(np.uint8)
    if x.shape[0] == 0:
        raise ValueError("no frames to write")
    return np.ascontiguousarray(x)


def _rate(fps: float) -> Fraction:
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    return Fraction(fps).limit_denominator(1001)


def write_mp4(frames: Any, path: str | Path, fps: float, crf: int = 18) -> Path:
    """H.264 (libx264, yuv420p) .mp4; odd widths/heights are padded to even by repeating the edge."""
    x = to_uint8_frames(frames)
    t, h, w, _ = x.shape
    ph, pw = h % 2, w % 2
    if ph or pw:  # yuv420p needs even sizes
        x = np.pad(x, ((0, 0), (0, ph), (0, pw), (0, 0)), mode="edge")
    path = Path(path)
    with atomic_path(path, durable=False) as tmp:
        with av.open(str(tmp), mode="w", format="mp4") as out:
            stream = out.add_stream("libx264", rate=_rate(fps))
            stream.width, stream.height = w + pw, h + ph
            stream.pix_fmt = "yuv420p"
            stream.options = {"crf": str(crf), "preset": "medium"}
            for frame in x:
                out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
            out.mux(stream.encode(None))  # flush the encoder
    return path


def write_gif(frames: Any, path: str | Path, fps: float) -> Path:
    """Looping animated .gif (Pillow). GIF delays are in 1/100 s, so fps is rounded to that.

    Pillow merges consecutive identical frames into one longer frame (same playback).
    """
    x = to_uint8_frames(frames)
    images = [Image.fromarray(f) for f in x]
    path = Path(path)
    with atomic_path(path, durable=False) as tmp:
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:],
                       duration=1000.0 / _rate(fps), loop=0, disposal=1)
    return path


def tile_videos(rows: Sequence[Sequence[np.ndarray]], pad: int = 2) -> np.ndarray:
    """uint8 (T, H, W, 3) clips laid out as rows of tiles, one video: T is the longest clip's length
    and shorter clips loop. Every tile is the first clip's frame size."""
    clips = [[to_uint8_frames(c) for c in row] for row in rows if len(row)]
    if not clips:
        raise ValueError("tile_videos needs at least one clip")
    t, h, w = max(c.shape[0] for row in clips for c in row), clips[0][0].shape[1], clips[0][0].shape[2]
    cols = max(len(row) for row in clips)
    out = np.full((t, len(clips) * (h + pad) + pad, cols * (w + pad) + pad, 3), 255, np.uint8)
    for r, row in enumerate(clips):
        for c, clip in enumerate(row):
            if clip.shape[1:3] != (h, w):
                raise ValueError(f"tile_videos needs clips of one size, got {clip.shape[1:3]} and {(h, w)}")
            y, x = pad + r * (h + pad), pad + c * (w + pad)
            out[:, y : y + h, x : x + w] = clip[np.arange(t) % len(clip)]
    return out


def _font(size: int) -> Any:
    try:
        return ImageFont.load_default(size=size)  # scalable when Pillow has FreeType
    except (TypeError, OSError, ImportError):
        return ImageFont.load_default()


def write_grid(rows: Sequence[Any], path: str | Path, labels: Sequence[str] | None = None,
               pad: int = 2) -> Path:
    """A .png with one row per video, its frames left to right, and a text label above each row.

    Rows may differ in length and frame size; every cell is the largest frame size (black fill).
    """
    videos = [to_uint8_frames(r) for r in rows]
    if not videos:
        raise ValueError("write_grid needs at least one row")
    if labels is not None and len(labels) != len(videos):
        raise ValueError(f"{len(labels)} labels for {len(videos)} rows")
    ch = max(v.shape[1] for v in videos)  # cell height / width
    cw = max(v.shape[2] for v in videos)
    cols = max(v.shape[0] for v in videos)
    font = _font(max(10, min(16, ch // 4)))
    label_h = 0
    if labels is not None and any(labels):
        measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
        label_h = max(measure.textbbox((0, 0), s or " ", font=font)[3] for s in labels) + 2 * pad
    row_h = label_h + ch + pad
    width = cols * (cw + pad) + pad
    grid = Image.new("RGB", (width, len(videos) * row_h + pad), (255, 255, 255))
    draw = ImageDraw.Draw(grid)
    for r, video in enumerate(videos):
        y = pad + r * row_h
        if label_h and labels is not None:
            draw.text((pad, y + pad), labels[r], fill=(0, 0, 0), font=font)
        for c, frame in enumerate(video):
            cell = Image.new("RGB", (cw, ch))
            cell.paste(Image.fromarray(frame), ((cw - frame.shape[1]) // 2,
                                                (ch - frame.shape[0]) // 2))
            grid.paste(cell, (pad + c * (cw + pad), y + label_h))
    path = Path(path)
    with atomic_path(path, durable=False) as tmp:
        grid.save(tmp, format="PNG")
    return path


def grid_columns(video: np.ndarray, limit: int = 16) -> np.ndarray:
    """At most `limit` evenly spaced frames of a uint8 (T, H, W, 3) video, for the grid figure."""
    if len(video) <= limit:
        return video
    return video[np.linspace(0, len(video) - 1, limit).round().astype(int)]


def write_videos(videos: Any, folder: str | Path, names: Sequence[str], fps: float,
                 labels: Sequence[str] | None = None) -> tuple[list[Path], list[np.ndarray]]:
    """`<name>.mp4` and `<name>.gif` per video (float (n, T, 3, H, W) in [0, 1] or uint8) and a
    `grid.png` of them all, one labelled row each. Returns the files and the grid rows (uint8
    (T', H, W, 3), at most 16 frames each: the figure for TensorBoard)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    files, rows = [], []
    for name, video in zip(names, videos, strict=True):
        frames = to_uint8_frames(video)
        files += [write_mp4(frames, folder / f"{name}.mp4", fps), write_gif(frames, folder / f"{name}.gif", fps)]
        rows.append(grid_columns(frames))
    files.append(write_grid(rows, folder / "grid.png", labels=labels))
    return files, rows


def read_video_frames(path: str | Path) -> tuple[np.ndarray, float]:
    """Every frame of a video or gif as uint8 (T, H, W, 3) and its average frame rate."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        fps = float(rate) if rate else 0.0
    if not frames:
        raise ValueError(f"{path}: no video frames")
    return np.stack(frames), fps
