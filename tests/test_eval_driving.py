"""The procedural driving scene and the ego-motion check: the scene agrees, played backwards it does not."""

import av
import numpy as np

from sdvideo.demo.driving_scene import CAPTION, foe, render_driving_scene, write_driving_scene
from sdvideo.eval.ego_motion import agreement_rate, flow_field_agreement


def test_rendered_scene_agrees_and_reversed_does_not():
    video = render_driving_scene(seed=3, frames=6, size=64)
    assert video.shape == (6, 64, 64, 3) and video.dtype == np.uint8
    forward = flow_field_agreement(video)
    assert forward["agrees"], forward
    assert forward["expansion"] > 0.85 and forward["parallax"] > 1.5
    backward = flow_field_agreement(video[::-1])
    assert not backward["agrees"], backward
    assert backward["expansion"] < 0.2
    frozen = flow_field_agreement(np.repeat(video[:1], 4, axis=0))  # no motion at all: no agreement
    assert not frozen["agrees"]
    rate = agreement_rate([video, video[::-1]])
    assert rate["rate"] == 0.5 and rate["clips"] == 2


def test_scene_is_deterministic_by_seed_and_writes_a_decodable_mp4(tmp_path):
    a, b = render_driving_scene(seed=1, frames=2, size=32), render_driving_scene(seed=1, frames=2, size=32)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, render_driving_scene(seed=2, frames=2, size=32))
    assert foe(128) == (64.0, 0.42 * 128)
    path = write_driving_scene(tmp_path / "drive.mp4", seed=0, frames=5, size=32)
    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == 5 and frames[0].shape == (32, 32, 3)
    assert path.with_suffix(".txt").read_text().strip() == CAPTION
