"""Shape consistency on rendered driving footage: moving content passes; shuffled, morphed, re-drawn frames fail.

The clips are procedural driving scenes (`render_driving_scene`, speed 12 m/s) at 64 and 128 px, 8 and 16
frames, 5, 10 and 20 frames a second, seeds 0-2. Run with -s to see the scores and margins.
"""

import functools

import cv2
import numpy as np
import pytest

from sdvideo.demo.driving_scene import render_driving_scene
from sdvideo.eval.shape_consistency import (
    MAX_DRIFT,
    MAX_JITTER,
    MAX_REDRAWN,
    shape_consistency,
    summarize_shape_consistency,
)

SEEDS = (0, 1, 2)
SPEED = 12.0  # metres per second
# (size, frames, fps): both sizes, both lengths and 5, 10 and 20 frames a second
CONDITIONS = [(64, 8, 10), (64, 16, 5), (64, 16, 20), (128, 8, 5), (128, 8, 20), (128, 16, 10)]


@functools.lru_cache(maxsize=None)
def drive(seed: int, frames: int, size: int, fps: float) -> np.ndarray:
    """uint8 (frames, size, size, 3) driving clip (cached: tests share clips; do not modify)."""
    return render_driving_scene(seed=seed, frames=frames, size=size, fps=fps, speed=SPEED)


def shuffled(video: np.ndarray, seed: int) -> np.ndarray:
    order = np.random.default_rng(seed).permutation(len(video))
    assert (np.diff(order) != 1).sum() >= len(video) // 2  # really out of order
    return video[order]


def morph(first: np.ndarray, last: np.ndarray, frames: int, shift: float = 1.0) -> np.ndarray:
    """uint8 (frames, H, W, 3): cross-fade from `first` to `last` (H, W, 3), moving right `shift` px a frame."""
    h, w = first.shape[:2]
    out = []
    for t in range(frames):
        alpha = t / (frames - 1)
        frame = (1 - alpha) * first.astype(np.float32) + alpha * last.astype(np.float32)
        moved = cv2.warpAffine(frame, np.float32([[1, 0, shift * t], [0, 1, 0]]), (w, h),
                               borderMode=cv2.BORDER_REFLECT)
        out.append(np.clip(moved + 0.5, 0, 255).astype(np.uint8))
    return np.stack(out)


def redrawn(frames: int, size: int, fps: float) -> np.ndarray:
    """uint8 (frames, size, size, 3): frame t of seed 100 + t, an unrelated scene in every frame."""
    return np.stack([drive(100 + t, t + 1, size, fps)[t] for t in range(frames)])


def blurred_noisy(video: np.ndarray, seed: int = 0) -> np.ndarray:
    """Gaussian blur (sigma 1 px at 64 px) and Gaussian noise (sigma 3 grey levels): like a generated sample."""
    rng = np.random.default_rng(seed)
    sigma = video.shape[2] / 64.0
    out = [cv2.GaussianBlur(f.astype(np.float32), (0, 0), sigma) + rng.normal(0.0, 3.0, f.shape) for f in video]
    return np.clip(np.stack(out) + 0.5, 0, 255).astype(np.uint8)


def show(name: str, r: dict) -> str:
    return (f"{name:9s} score {r['score']:.2f} redrawn {r['redrawn']:.2f} drift {r['drift']:.2f} "
            f"jitter {r['jitter']:.2f} consistent {r['consistent']}")


@functools.lru_cache(maxsize=None)
def scored(size: int, frames: int, fps: float, seed: int) -> dict[str, dict]:
    """Shape consistency of a forward clip and of its blurred, shuffled and morphed versions (cached)."""
    video = drive(seed, frames, size, fps)
    other = drive(seed + 10, 1, size, fps)[0]  # an unrelated scene
    return {
        "forward": shape_consistency(video),
        "blurred": shape_consistency(blurred_noisy(video, seed)),
        "shuffled": shape_consistency(shuffled(video, seed)),
        "morph": shape_consistency(morph(video[0], other, frames)),
    }


@pytest.mark.parametrize("size,frames,fps", CONDITIONS)
def test_forward_passes_shuffled_and_morph_fail(size, frames, fps):
    for seed in SEEDS:
        results = scored(size, frames, fps, seed)
        print(f"\n{size} px, {frames} frames, {fps} fps, seed {seed}")
        for name, r in results.items():
            print(show(name, r))
        for name in ("forward", "blurred"):
            assert results[name]["consistent"], show(name, results[name])
        for name in ("shuffled", "morph"):
            assert not results[name]["consistent"], show(name, results[name])
        assert results["shuffled"]["jitter"] > MAX_JITTER  # content jumps back and forth
        assert results["morph"]["drift"] > MAX_DRIFT and results["morph"]["redrawn"] < 0.1  # small steps, new shapes
        assert results["forward"]["gaps"][-1] == frames - 1


@pytest.mark.parametrize("size,frames,fps", [(64, 8, 10), (64, 16, 5), (128, 8, 20)])
def test_a_new_scene_every_frame_fails(size, frames, fps):
    video = redrawn(frames, size, fps)
    r = shape_consistency(video)
    print("\n" + show(f"redrawn {size}", r))
    assert not r["consistent"] and r["redrawn"] > MAX_REDRAWN, show("redrawn", r)


def test_still_clip_is_consistent_and_scores_near_zero():
    for size, frames in ((64, 8), (128, 16)):
        still = np.repeat(drive(0, 1, size, 10)[:1], frames, axis=0)
        r = shape_consistency(still)
        print("\n" + show(f"still {size}", r))
        assert r["consistent"] and r["score"] < 0.1, show("still", r)


def test_forward_and_morph_are_separated_by_a_clear_margin():
    lines, passing, morphs = [], [], []
    for size, frames, fps in CONDITIONS:
        for seed in SEEDS:
            r = scored(size, frames, fps, seed)
            passing += [r["forward"]["score"], r["blurred"]["score"]]
            morphs.append(r["morph"]["score"])
            lines.append(f"{size} px {frames} fr {fps} fps seed {seed}: forward {r['forward']['score']:.2f} "
                         f"blurred {r['blurred']['score']:.2f} morph {r['morph']['score']:.2f} "
                         f"shuffled {r['shuffled']['score']:.2f} (drift forward {r['forward']['drift']:.2f}, "
                         f"morph {r['morph']['drift']:.2f})")
    print("\n" + "\n".join(lines))
    print(f"highest forward/blurred score {max(passing):.2f}, lowest morph score {min(morphs):.2f}, "
          f"ratio {min(morphs) / max(passing):.2f}")
    assert max(passing) < 0.9 and min(morphs) > 1.1 and min(morphs) / max(passing) > 1.3


def test_shapes_morphing_while_the_camera_moves_fail_at_20_fps():
    """A cross-fade between two driving clips: everything moves as it should, yet every shape turns into
    another. At 20 fps the content is tracked over the whole clip and the drift shows; with faster
    motion per frame (5 fps) tracking spans only a few frames and such a morph is caught only partly."""
    for seed in SEEDS:
        a, b = drive(seed, 16, 64, 20), drive(seed + 10, 16, 64, 20)
        alpha = np.linspace(0, 1, 16, dtype=np.float32)[:, None, None, None]
        both = np.clip((1 - alpha) * a + alpha * b + 0.5, 0, 255).astype(np.uint8)
        r = shape_consistency(both)
        print("\n" + show(f"morphing {seed}", r))
        assert not r["consistent"] and r["drift"] > MAX_DRIFT, show("morphing", r)


def texture(size=64, seed=0):
    """A smooth random RGB texture, uint8 (size, size, 3)."""
    noise = np.random.default_rng(seed).random((size, size, 3)).astype(np.float32)
    smooth = cv2.GaussianBlur(noise, (0, 0), 2.0)
    return ((smooth - smooth.min()) / (smooth.max() - smooth.min()) * 255).astype(np.uint8)


def test_synthetic_motion_noise_and_back_and_forth():
    base = texture()
    moving = np.stack([np.roll(base, 2 * t, axis=1) for t in range(8)])  # 2 px a frame to the right
    r = shape_consistency(moving)
    assert r["consistent"] and r["redrawn"] < 0.05 and r["drift"] < 0.1 and r["jitter"] < 0.05, show("moving", r)
    wobble = np.stack([np.roll(base, 2 * (t % 2), axis=1) for t in range(8)])  # right, left, right, ...
    r = shape_consistency(wobble)
    assert not r["consistent"] and r["jitter"] > 1.5, show("wobble", r)  # motion reverses every frame
    noise = np.random.default_rng(1).integers(0, 256, (6, 64, 64, 3), dtype=np.uint8)
    r = shape_consistency(noise)
    assert not r["consistent"] and r["redrawn"] > 0.6, show("noise", r)
    flat = np.full((4, 32, 32, 3), 128, np.uint8)  # no structure at all: nothing to judge
    r = shape_consistency(flat)
    assert r["consistent"] and r["score"] == 0.0 and r["textured"] == 0.0


def test_summary_gaps_and_bad_input():
    video = drive(0, 8, 64, 10)
    s = summarize_shape_consistency([video, shuffled(video, 0)])
    assert s["clips"] == 2 and s["consistent_share"] == 0.5 and len(s["per_clip"]) == 2
    assert s["score_std"] > 0 and s["thresholds"] == dict(redrawn=MAX_REDRAWN, drift=MAX_DRIFT, jitter=MAX_JITTER)
    assert np.isnan(summarize_shape_consistency([])["score"])
    r = shape_consistency(video, gaps=(1, 3, 50))
    assert r["gaps"] == [1, 3, 7] and len(r["drift_per_gap"]) == len(r["coverage_per_gap"]) == 3
    assert all(0.0 <= c <= 1.0 for c in r["coverage_per_gap"])
    with pytest.raises(ValueError, match="at least 3 frames"):
        shape_consistency(video[:2])
    with pytest.raises(ValueError, match="uint8"):
        shape_consistency(video.astype(np.float32))
    with pytest.raises(ValueError, match="uint8"):
        shape_consistency(video[..., 0])
    with pytest.raises(ValueError, match="gaps"):
        shape_consistency(video, gaps=(0, 2))
