"""Parallel decoding: ordered streams equal to sequential decoding, errors per video, cancellation."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

import media
from sdvideo.data.decode_pool import DecodeFailed, decode_ahead
from sdvideo.data.sources import VideoJob
from sdvideo.data.video_io import decode_video


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    d = tmp_path_factory.mktemp("decode")
    paths = [media.write_video(d / f"v{i}.mkv", 15 + 6 * i, 30, 40, 30) for i in range(5)]
    bad = media.write_random_bytes(d / "bad.mp4")
    return paths[:2] + [bad] + paths[2:]


def test_streams_come_in_order_and_match_sequential_decoding(clips):
    jobs = [VideoJob(p) for p in clips]
    decoded = []
    got = []
    for job, stream in decode_ahead(jobs, fps=10, size=16, batch_size=4, workers=3,
                                    on_frames=decoded.append):
        try:
            frames = np.concatenate(list(stream))
        except DecodeFailed as e:
            got.append((job.path.name, str(e)))
            continue
        assert stream.result.frames == len(frames)
        np.testing.assert_array_equal(frames, decode_video(job.path, fps=10, size=16).frames)
        got.append((job.path.name, len(frames)))
    assert [g[0] for g in got] == [p.name for p in clips]
    assert "not a readable video" in got[2][1]
    assert sum(decoded) == sum(g[1] for g in got if isinstance(g[1], int))


def test_abandoned_streams_and_closing_stop_the_threads(clips):
    before = threading.active_count()
    gen = decode_ahead([VideoJob(p) for p in clips], fps=30, size=16, batch_size=1, workers=2, depth=1)
    job, stream = next(gen)
    next(iter(stream))  # take one batch, then move on: the rest of that stream is dropped
    job2, stream2 = next(gen)
    assert job2.path == clips[1] and len(next(iter(stream2))) == 1
    gen.close()
    deadline = time.time() + 5
    while threading.active_count() > before and time.time() < deadline:
        time.sleep(0.05)
    assert threading.active_count() == before
