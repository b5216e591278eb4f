"""Synthetic test media made with PyAV and Pillow: small clips whose frames say which frame they are.

Frame k of a clip (see `pattern`): red is a horizontal gradient, green is the frame index code
`4 * k mod 256` everywhere (so a resized or cropped frame still tells its source index, see
`index_of`), blue is a square moving right by 2 px a frame. In the second shot of a clip with a
scene cut (`cut_at`) red runs the other way and blue is a bright background with a dark square.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image


def pattern(k: int, width: int, height: int, shot: int = 0) -> np.ndarray:
    """uint8 (height, width, 3) frame number k of shot 0 or 1 (the green index code is the same)."""
    img = np.zeros((height, width, 3), np.uint8)
    img[..., 0] = np.linspace(0, 255, width, dtype=np.float32)[None, :].round().astype(np.uint8)
    img[..., 1] = (4 * k) % 256
    side = max(4, min(width, height) // 4)
    x0 = (2 * k) % max(1, width - side)
    y0 = (height - side) // 2
    img[y0 : y0 + side, x0 : x0 + side, 2] = 255
    if shot % 2:
        img[..., 0] = img[:, ::-1, 0]
        img[..., 2] = 255 - img[..., 2]
    return img


def index_of(frame: np.ndarray) -> int:
    """The source frame index of a decoded frame (T, H, W, 3) -> int, from its green channel."""
    return int(round(float(np.median(frame[..., 1])) / 4))


def write_video(path: str | Path, frames: int = 60, fps: float = 30, width: int = 48,
                height: int = 36, codec: str = "ffv1", times: Sequence[float] | None = None,
                cut_at: Sequence[int] = ()) -> Path:
    """Write a clip of `frames` pattern frames at `fps`.

    `cut_at`: source frame indices where a new shot starts (shots alternate between two looks).

    codec "ffv1" (lossless RGB; odd sizes fine; use .mkv/.avi) or "libx264" (even sizes; .mp4).
    `times` (seconds, one per frame) gives explicit timestamps for a variable-frame-rate clip.
    """
    path = Path(path)
    n = len(times) if times is not None else frames
    with av.open(str(path), "w") as out:
        if times is None:
            stream = out.add_stream(codec, rate=Fraction(fps).limit_denominator(1000))
        else:
            stream = out.add_stream(codec, rate=Fraction(fps).limit_denominator(1000))
            stream.codec_context.time_base = Fraction(1, 1000)
            stream.time_base = Fraction(1, 1000)
        stream.width, stream.height = width, height
        stream.pix_fmt = "bgr0" if codec == "ffv1" else "yuv420p"
        if codec == "libx264":
            stream.options = {"crf": "10", "preset": "ultrafast"}
        for k in range(n):
            shot = sum(1 for c in cut_at if k >= c)
            frame = av.VideoFrame.from_ndarray(pattern(k, width, height, shot), format="rgb24")
            if times is not None:
                frame.pts = round(times[k] * 1000)
                frame.time_base = Fraction(1, 1000)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def write_gif(path: str | Path, frames: int = 12, fps: float = 10, width: int = 33,
              height: int = 27) -> Path:
    """An animated GIF of pattern frames (every frame differs, so Pillow keeps them all)."""
    images = [Image.fromarray(pattern(k, width, height)) for k in range(frames)]
    images[0].save(path, save_all=True, append_images=images[1:], duration=round(1000 / fps),
                   loop=0)
    return Path(path)


def write_audio_only(path: str | Path, seconds: float = 1.0) -> Path:
    """An .mp4/.m4a with one AAC audio stream and no video."""
    rate = 16000
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("aac", rate=rate)
        stream.layout = "mono"
        t = np.arange(int(rate * seconds)) / rate
        tone = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None, :]
        chunk = 1024
        for i in range(0, tone.shape[1], chunk):
            frame = av.AudioFrame.from_ndarray(tone[:, i : i + chunk].copy(), format="fltp",
                                               layout="mono")
            frame.sample_rate = rate
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return Path(path)


def write_random_bytes(path: str | Path, n: int = 4096, seed: int = 0) -> Path:
    Path(path).write_bytes(np.random.default_rng(seed).integers(0, 256, n, np.uint8).tobytes())
    return Path(path)


def write_truncated(src: str | Path, path: str | Path, fraction: float = 0.5) -> Path:
    """The first `fraction` of the bytes of `src` (an mp4 cut mid-download)."""
    data = Path(src).read_bytes()
    Path(path).write_bytes(data[: int(len(data) * fraction)])
    return Path(path)


def copy(src: str | Path, path: str | Path) -> Path:
    shutil.copyfile(src, path)
    return Path(path)


def write_text(path: str | Path, data: bytes) -> Path:
    """A caption/manifest file with exactly these bytes (e.g. Latin-1, to test non-UTF-8 input)."""
    Path(path).write_bytes(data)
    return Path(path)
