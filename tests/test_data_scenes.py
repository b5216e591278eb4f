"""Scene cuts: the detector on a synthetic clip with known cuts and on bikes.mp4, and clips never span one."""

from __future__ import annotations

import numpy as np
import pytest

import media
from sdvideo.data.cache import load_cache_info, load_video_latents
from sdvideo.data.dataset import ClipDataset
from sdvideo.data.prepare import prepare
from sdvideo.data.scenes import CutDetector, detect_scenes, segments_from_cuts
from sdvideo.data.video_io import VideoReader, find_sample_clip
from sdvideo.models.base import build_base

# bikes.mp4 (25 fps, 250 frames): hard cuts before source frames 30, 76, 137, 187 and 242 (checked by
# eye: a road marking / a man in a suit / a taxi sign / a cyclist / a fence / a bicycle wheel), i.e.
# at 1.20, 3.04, 5.48, 7.48 and 9.68 s. At 10 fps the first frame showing each new shot is
# ceil(10 t): 12, 31, 55, 75, 97. The 73-76 pan is the strongest non-cut change.
BIKES_CUTS_25FPS = [30, 76, 137, 187, 242]
BIKES_SHOTS_10FPS = [[0, 12], [12, 31], [31, 55], [55, 75], [75, 97], [97, 100]]


def test_segments_from_cuts():
    assert segments_from_cuts([3, 7], 10) == [[0, 3], [3, 7], [7, 10]]
    assert segments_from_cuts([0, 7, 7, 10, 12], 10) == [[0, 7], [7, 10]]
    assert segments_from_cuts([], 4) == [[0, 4]] and segments_from_cuts([], 0) == []


def test_synthetic_cut_is_found_at_the_right_resampled_frame(tmp_path):
    # 2 s at 30 fps (< 64 frames: the green index code wraps there, which looks like a cut);
    # new shots start at source frames 25 (0.833 s) and 41 (1.367 s).
    path = media.write_video(tmp_path / "cut.mkv", 60, 30, 48, 36, cut_at=[25, 41])
    assert detect_scenes(path, fps=None) == [[0, 25], [25, 41], [41, 60]]
    # at 10 fps frame k shows the latest source frame at or before k/10 s: ceil(8.33) = 9, ceil(13.67) = 14
    with VideoReader(path, fps=10, size=16, scene_threshold=0.12) as reader:
        frames = list(reader)
    assert reader.cuts == [9, 14]
    shots = segments_from_cuts(reader.cuts, len(frames))
    assert shots == [[0, 9], [9, 14], [14, 20]]
    looks = [int(f[..., 2].mean() > 128) for f in frames]  # shot 1 has a bright blue background
    assert looks == [0] * 9 + [1] * 5 + [0] * 6
    assert detect_scenes(path, fps=10, start=1.0) == [[0, 4], [4, 10]]  # from 1.0 s: 1.367 s -> 4


def test_threshold_zero_disables_and_motion_is_no_cut(tmp_path):
    path = media.write_video(tmp_path / "cut.mkv", 30, 30, 48, 36, cut_at=[15])
    with VideoReader(path, fps=None, size=16, scene_threshold=0) as reader:
        list(reader)
    assert reader.cuts == [] and reader.detector is None
    plain = media.write_video(tmp_path / "plain.mkv", 60, 30, 48, 36)  # a moving square, no cut
    assert detect_scenes(plain, fps=None) == [[0, 60]]
    with pytest.raises(ValueError, match="0 disables"):
        CutDetector(0)


def test_bikes_cuts():
    path = find_sample_clip("bikes.mp4")
    assert detect_scenes(path, fps=None) == segments_from_cuts(BIKES_CUTS_25FPS, 250)
    assert detect_scenes(path, fps=10) == BIKES_SHOTS_10FPS


def test_clips_stay_inside_shots(tmp_path):
    base = build_base("tiny", seed=0)
    d = tmp_path / "in"
    d.mkdir()
    media.write_video(d / "cut.mkv", 60, 30, 48, 36, cut_at=[25, 41])
    out = tmp_path / "cache"
    summary = prepare([d], out, base, fps=10, size=16, progress=False, clip_frames=5)
    (entry,) = load_cache_info(out)["videos"]
    assert entry["segments"] == [[0, 9], [9, 14], [14, 20]]
    assert summary.clips == (9 - 4) + (5 - 4) + (6 - 4)
    ds = ClipDataset(out, frames=5)
    assert len(ds) == summary.clips
    starts = [ds.locate(i)[1] for i in range(len(ds))]
    for s in starts:  # every clip lies inside one shot
        assert any(a <= s and s + 5 <= b for a, b in entry["segments"])
    ds3 = ClipDataset(out, frames=3, strides=[1, 3])  # stride 3 needs 7 frames: not in shot [9, 14)
    strides_seen = set()
    for i in range(len(ds3)):
        item = ds3[i]
        strides_seen.add(item["stride"])
        lo, hi = item["start"], item["start"] + 2 * item["stride"] + 1
        assert any(a <= lo and hi <= b for a, b in entry["segments"])
        assert item["fps"] == 10.0 / item["stride"]
    assert strides_seen == {1, 3}
    lat = load_video_latents(out, entry)
    assert np.isfinite(lat.float().numpy()).all()
    prepare([d], tmp_path / "nocuts", base, fps=10, size=16, progress=False, scene_threshold=0)
    assert load_cache_info(tmp_path / "nocuts")["videos"][0]["segments"] == [[0, 20]]
