"""The procedural driving world: each seed a distinct, deterministic scene whose flow is forward ego-motion."""

import itertools

import numpy as np
import pytest

from sdvideo.demo.driving_scene import (CAPTION, OBJECT_KINDS, SETTINGS, SPEED_RANGE, TERRAINS, TIMES_OF_DAY,
                                        render_driving_scene, scene_caption, scene_info, scene_speed,
                                        write_driving_scene)
from sdvideo.eval.ego_motion import flow_field_agreement
from sdvideo.eval.flow import motion_stats


def colour_histogram(frame: np.ndarray) -> np.ndarray:
    """Share of the pixels of a uint8 (H, W, 3) frame in each of 4 x 4 x 4 colour bins: (64,)."""
    q = (frame // 64).reshape(-1, 3).astype(np.int64)
    counts = np.bincount(q[:, 0] * 16 + q[:, 1] * 4 + q[:, 2], minlength=64)
    return counts / counts.sum()


def distance(a: np.ndarray, b: np.ndarray) -> float:
    """Total-variation distance between the colour histograms of two frames, in [0, 1]."""
    return 0.5 * float(np.abs(colour_histogram(a) - colour_histogram(b)).sum())


def test_different_seeds_are_different_scenes():
    clips = {seed: render_driving_scene(seed, 16, 64) for seed in range(10)}
    within = [distance(c[0], c[-1]) for c in clips.values()]  # 1.5 s of driving through one scene
    between = [distance(clips[a][0], clips[b][0]) for a, b in itertools.combinations(clips, 2)]
    assert np.mean(np.array(between) > max(within)) >= 0.85  # 45 pairs; about 0.98 of them
    assert np.median(between) > 2 * np.median(within)
    assert len({scene_caption(seed) for seed in clips}) >= 8


def test_scene_styles_cover_the_world_and_speeds_are_in_range():
    infos = [scene_info(seed) for seed in range(200)]
    assert {i.time_of_day for i in infos} == set(TIMES_OF_DAY)
    assert {i.terrain for i in infos} == set(TERRAINS)
    assert {i.setting for i in infos} == set(SETTINGS)
    assert {i.markings for i in infos} == {"dashed", "double solid", "none"}
    assert {i.road for i in infos} == {"asphalt", "dirt"} and {i.edge_lines for i in infos} == {True, False}
    assert set().union(*(i.objects for i in infos)) == set(OBJECT_KINDS)
    assert len({i.caption for i in infos}) > 100
    assert all(i.caption.startswith("driving down ") and i.caption != CAPTION for i in infos)
    speeds = np.array([scene_speed(seed) for seed in range(200)])
    assert speeds.min() >= SPEED_RANGE[0] and speeds.max() <= SPEED_RANGE[1] and speeds.std() > 1.5
    assert scene_info(5) == scene_info(5) and scene_info(5).speed == scene_speed(5)
    assert scene_caption(5) == scene_info(5).caption


def test_same_seed_gives_identical_frames_and_a_longer_clip_extends_a_shorter_one():
    video = render_driving_scene(7, 6, 48)
    assert video.shape == (6, 48, 48, 3) and video.dtype == np.uint8
    assert np.array_equal(video, render_driving_scene(7, 6, 48))
    assert np.array_equal(video[:3], render_driving_scene(7, 3, 48))
    assert np.array_equal(video, render_driving_scene(7, 6, 48, speed=scene_speed(7)))  # None: the seed's speed
    still = render_driving_scene(7, 3, 48, speed=0.0)
    assert np.array_equal(still[0], still[2]) and np.array_equal(still[0], video[0])


def test_the_camera_moves_speed_over_fps_metres_a_frame():
    fast, slow = render_driving_scene(4, 9, 64, fps=20), render_driving_scene(4, 3, 64, fps=5)
    diff = np.abs(fast[::4].astype(np.int16) - slow)  # frame 4k at 20 fps = frame k at 5 fps
    assert diff.max() <= 1 and diff.mean() < 0.01  # (float rounding of the camera position)
    double = render_driving_scene(4, 3, 64, speed=2 * scene_speed(4))
    assert np.abs(fast[::8][:2].astype(np.int16) - render_driving_scene(4, 2, 64, fps=2.5)).max() <= 1
    assert np.abs(double[1].astype(np.int16) - fast[4]).max() <= 1  # twice the speed at 10 fps: 4 frames at 20
    # measured flow (Farneback) scales with speed / fps while the motion stays within its range
    # (at 5 fps the near road moves tens of pixels a frame and the measurement saturates)
    ratios = [motion_stats(render_driving_scene(seed, 6, 64, fps=80))["flow_magnitude"]
              / motion_stats(render_driving_scene(seed, 6, 64, fps=20))["flow_magnitude"] for seed in range(3)]
    assert 0.2 < np.mean(ratios) < 0.4, ratios


@pytest.mark.parametrize("size", [64, 128])
def test_ego_motion_check_agrees_for_many_scenes_and_not_played_backwards(size):
    for seed in range(6):
        video = render_driving_scene(seed, 8, size)
        forward, backward = flow_field_agreement(video), flow_field_agreement(video[::-1])
        assert forward["agrees"] and forward["expansion"] > 0.8, (seed, scene_info(seed), forward)
        assert not backward["agrees"] and backward["expansion"] < 0.3, (seed, scene_info(seed), backward)


def test_write_driving_scene_caption_choices(tmp_path):
    named = write_driving_scene(tmp_path / "named.mp4", seed=2, frames=3, size=32, caption=scene_caption(2))
    assert named.with_suffix(".txt").read_text().strip() == scene_caption(2)
    generic = write_driving_scene(tmp_path / "generic.mp4", seed=2, frames=3, size=32)
    assert generic.with_suffix(".txt").read_text().strip() == CAPTION
    bare = write_driving_scene(tmp_path / "bare.mp4", seed=2, frames=3, size=32, speed=9.0, caption=None)
    assert bare.exists() and not bare.with_suffix(".txt").exists()
