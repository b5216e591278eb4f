"""Parallel decoding: worker threads decode the next videos while the encoder works on the current.

`decode_ahead(jobs, ...)` yields `(job, DecodeStream)` in job order. Each stream is fed by its own
thread (at most `workers` alive), which puts uint8 (n, S, S, 3) frame batches into a bounded queue,
so memory stays at about workers * depth batches whatever the video lengths. Threads are enough:
PyAV (FFmpeg) and Pillow release the GIL while decoding and resizing. Consuming in job order keeps
the cache layout independent of thread timing (a resumed run writes what an uninterrupted one does).
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sdvideo.data.sources import VideoJob
from sdvideo.data.video_io import VideoError, VideoReader


class DecodeFailed(Exception):
    """A video that cannot be decoded; the message is the one-line reason (without the path)."""


@dataclass
class DecodeResult:
    frames: int  # frames produced (at the target fps)
    cuts: list[int] = field(default_factory=list)  # frame indices that start a new shot
    duration: float = 0.0  # seconds of the source that were decoded


def reason_of(exc: BaseException) -> str:
    """One line saying why a video failed to decode (without repeating its path)."""
    if isinstance(exc, VideoError):
        return exc.reason
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:200]


class DecodeStream:
    """Iterate for the frame batches of one video; then `result` holds its DecodeResult.
    Iteration raises DecodeFailed when the video turns out to be unusable."""

    def __init__(self, job: VideoJob, depth: int) -> None:
        self.job = job
        self.queue: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)
        self.cancelled = threading.Event()
        self.result: DecodeResult | None = None

    def put(self, item: tuple[str, Any]) -> bool:
        """From the worker: False when the consumer gave up on this stream."""
        while not self.cancelled.is_set():
            try:
                self.queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> Iterator[np.ndarray]:
        while True:
            kind, value = self.queue.get()
            if kind == "frames":
                yield value
            elif kind == "error":
                raise DecodeFailed(value)
            else:
                self.result = value
                return


def _work(stream: DecodeStream, fps: float, size: int, batch_size: int, scene_threshold: float,
          on_frames: Callable[[int], None] | None) -> None:
    job = stream.job
    try:
        with VideoReader(job.path, fps=fps, size=size, start=job.start, end=job.end,
                         scene_threshold=scene_threshold) as reader:
            batch: list[np.ndarray] = []
            for frame in reader:
                batch.append(frame)
                if len(batch) == batch_size:
                    if not stream.put(("frames", np.stack(batch))):
                        return
                    if on_frames:
                        on_frames(len(batch))
                    batch = []
            if batch:
                if not stream.put(("frames", np.stack(batch))):
                    return
                if on_frames:
                    on_frames(len(batch))
            stream.put(("done", DecodeResult(reader.frames_out, list(reader.cuts), float(reader.duration))))
    except Exception as e:  # VideoError, or anything PyAV/Pillow raise on a broken file
        stream.put(("error", reason_of(e)))


def decode_ahead(jobs: Sequence[VideoJob], *, fps: float, size: int, batch_size: int,
                 scene_threshold: float = 0.0, workers: int = 4, depth: int = 4,
                 on_frames: Callable[[int], None] | None = None) -> Iterator[tuple[VideoJob, DecodeStream]]:
    """Yield (job, stream) in order while the next `workers` videos decode in background threads
    (one thread per video: the current one's, if still decoding, plus up to `workers` ahead).

    A stream the consumer leaves unfinished is cancelled when the next one is requested; closing
    the generator (or an exception in the consumer) cancels all of them.
    """
    workers = max(1, int(workers))
    pending: deque[DecodeStream] = deque()
    started = 0

    def start_more() -> None:
        nonlocal started
        while started < len(jobs) and len(pending) < workers:
            stream = DecodeStream(jobs[started], depth)
            threading.Thread(target=_work, args=(stream, fps, size, batch_size, scene_threshold, on_frames),
                             name=f"decode-{started}", daemon=True).start()
            pending.append(stream)
            started += 1

    current: DecodeStream | None = None
    try:
        start_more()
        while pending:
            current = pending.popleft()
            start_more()  # keep `workers` threads busy while this one is consumed
            yield current.job, current
            current.cancelled.set()  # no-op when fully consumed
    finally:
        for stream in [current, *pending]:
            if stream is not None:
                stream.cancelled.set()
