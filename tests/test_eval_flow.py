"""Motion statistics from Farnebäck flow on clips whose motion is known."""

import numpy as np
import pytest

from sdvideo.eval.flow import motion_stats, optical_flow, summarize


def texture(size=64, seed=0):
    """A smooth random RGB texture, uint8 (size, size, 3): something the flow can track."""
    import cv2

    noise = np.random.default_rng(seed).random((size, size, 3)).astype(np.float32)
    smooth = cv2.GaussianBlur(noise, (0, 0), 2.0)
    smooth = (smooth - smooth.min()) / (smooth.max() - smooth.min())
    return (smooth * 255).astype(np.uint8)


def translating(speed=2, frames=6, size=64):
    base = texture(size)
    return np.stack([np.roll(base, speed * t, axis=1) for t in range(frames)])  # moves right


def test_translating_pattern_has_its_speed_and_low_warp_error():
    stats = motion_stats(translating(speed=2))
    assert stats["flow_magnitude"] == pytest.approx(2.0, abs=0.25)
    assert stats["warp_error"] < 0.03
    assert stats["flicker"] < 0.01
    forward = optical_flow(translating()[0], translating()[1])  # (H, W, 2): dx ~ +2, dy ~ 0
    assert np.median(forward[8:-8, 8:-8, 0]) == pytest.approx(2.0, abs=0.2)
    assert abs(np.median(forward[8:-8, 8:-8, 1])) < 0.2


def test_random_noise_frames_have_high_warp_error_and_brightness_jumps_flicker():
    noise = np.random.default_rng(1).integers(0, 256, (5, 64, 64, 3), dtype=np.uint8)
    assert motion_stats(noise)["warp_error"] > 0.15
    still = np.repeat(texture()[None], 4, axis=0).astype(np.int16)
    flashing = np.clip(still + np.array([0, 40, 0, 40])[:, None, None, None], 0, 255).astype(np.uint8)
    assert motion_stats(flashing)["flicker"] > 0.1  # +-40/255 in every other frame
    assert motion_stats(still.astype(np.uint8))["flicker"] < 1e-3


def test_summary_and_bad_input():
    s = summarize([translating(1), translating(3)])
    assert s["clips"] == 2 and s["flow_magnitude"] == pytest.approx(2.0, abs=0.3) and s["flow_magnitude_std"] > 0.5
    with pytest.raises(ValueError, match="at least 2 frames"):
        motion_stats(translating()[:1])
    with pytest.raises(ValueError, match="uint8"):
        motion_stats(translating().astype(np.float32))
