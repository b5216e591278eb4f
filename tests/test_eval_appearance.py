"""eval/appearance.py: colourfulness, contrast, detail and diversity against hand-computed values; washing out
halves them; blur lowers detail."""

import numpy as np
import pytest

from sdvideo.eval.appearance import (clip_appearance, diversity, frame_appearance, relative_to_real,
                                     summarize_appearance)


def test_grey_has_no_colour_and_a_flat_frame_no_contrast():
    flat = np.full((8, 8, 3), 90, np.uint8)
    assert frame_appearance(flat) == {"colourfulness": 0.0, "contrast": 0.0, "detail": 0.0}


def test_half_red_half_blue_against_the_formula_by_hand():
    frame = np.zeros((4, 8, 3), np.uint8)
    frame[:, :4, 0] = 255  # red: rg = 255, yb = 127.5
    frame[:, 4:, 2] = 255  # blue: rg = 0, yb = -255
    # std(rg) = 127.5, std(yb) = 191.25; mean(rg) = 127.5, mean(yb) = -63.75
    expected = np.hypot(127.5, 191.25) + 0.3 * np.hypot(127.5, -63.75)
    # luma: red 0.299 * 255 = 76.245, blue 0.114 * 255 = 29.07; std of two equal halves = half the gap
    got = frame_appearance(frame)
    assert got["colourfulness"] == pytest.approx(expected, rel=1e-12)
    assert got["contrast"] == pytest.approx((76.245 - 29.07) / 2, rel=1e-12)


def test_washing_a_clip_halfway_to_grey_halves_both():
    rng = np.random.default_rng(0)
    clip = rng.integers(0, 128, (3, 16, 16, 3)).astype(np.uint8) * 2  # even values: the blend below is exact
    washed = (clip // 2 + 64).astype(np.uint8)  # halfway toward uniform grey 128
    sharp, hazy = clip_appearance(clip), clip_appearance(washed)
    assert hazy["colourfulness"] == pytest.approx(sharp["colourfulness"] / 2, rel=1e-9)
    assert hazy["contrast"] == pytest.approx(sharp["contrast"] / 2, rel=1e-9)
    assert hazy["detail"] == pytest.approx(sharp["detail"] / 2, rel=1e-9)
    summary = summarize_appearance([clip, washed])
    assert summary["clips"] == 2
    assert summary["colourfulness"] == pytest.approx(0.75 * sharp["colourfulness"], rel=1e-9)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="uint8 frames"):
        clip_appearance(np.zeros((2, 8, 8, 3), np.float32))


def test_relative_to_real_divides_by_the_real_clips_numbers():
    looks = {"real": {"colourfulness": 60.0, "contrast": 30.0}, "video": {"colourfulness": 15.0, "contrast": 45.0},
             "grey": {"colourfulness": 0.0, "contrast": 0.0}}
    ratios = relative_to_real(looks)
    assert ratios["real"] == {"colourfulness": 1.0, "contrast": 1.0}
    assert ratios["video"] == {"colourfulness": 0.25, "contrast": 1.5}
    assert ratios["grey"] == {"colourfulness": 0.0, "contrast": 0.0}
    flat = relative_to_real({"real": {"colourfulness": 0.0, "contrast": 10.0}})["real"]
    assert np.isnan(flat["colourfulness"]) and flat["contrast"] == 1.0


def test_diversity_is_the_mean_distance_between_first_frames_by_hand():
    a, b, c = (np.full((3, 4, 4, 3), v, np.uint8) for v in (100, 110, 130))
    c[1:] = 0  # later frames do not count
    # pairs: |100-110| = 10, |100-130| = 30, |110-130| = 20
    assert diversity([a, b, c]) == pytest.approx(20.0, rel=1e-12)
    assert diversity([a, a.copy(), a.copy()]) == 0.0  # every seed the same video: no diversity
    assert np.isnan(diversity([a]))
    small = np.full((3, 2, 2, 3), 0, np.uint8)
    assert diversity([a, b, small]) == pytest.approx(10.0, rel=1e-12)  # pairs of unequal size are skipped


def test_washing_every_clip_halfway_to_grey_halves_their_diversity():
    rng = np.random.default_rng(1)
    clips = [rng.integers(0, 128, (2, 8, 8, 3)).astype(np.uint8) * 2 for _ in range(4)]
    washed = [(c // 2 + 64).astype(np.uint8) for c in clips]
    sharp, hazy = summarize_appearance(clips), summarize_appearance(washed)
    assert sharp["diversity"] > 0
    assert hazy["diversity"] == pytest.approx(sharp["diversity"] / 2, rel=1e-9)
    ratios = relative_to_real({"real": sharp, "video": hazy})
    assert ratios["video"]["diversity"] == pytest.approx(0.5, rel=1e-9)
    assert ratios["video"]["colourfulness"] == pytest.approx(0.5, rel=1e-9)


def test_detail_is_the_mean_absolute_laplacian_by_hand_and_blur_lowers_it():
    dot = np.zeros((5, 5, 3), np.uint8)
    dot[2, 2] = 100  # luma 100: the Laplacian is -400 there and +100 at its 4 neighbours, 0 at the other 4 of 3 x 3
    assert frame_appearance(dot)["detail"] == pytest.approx(800 / 9, rel=1e-12)
    rng = np.random.default_rng(2)
    noisy = rng.integers(0, 256, (1, 32, 32, 3)).astype(np.uint8)
    blurred = ((noisy[:, :-1, :-1].astype(np.float64) + noisy[:, 1:, :-1] + noisy[:, :-1, 1:] + noisy[:, 1:, 1:]) / 4)
    assert clip_appearance(blurred.round().astype(np.uint8))["detail"] < 0.5 * clip_appearance(noisy)["detail"]
    assert np.isnan(frame_appearance(np.zeros((2, 8, 3), np.uint8))["detail"])  # no interior pixels
