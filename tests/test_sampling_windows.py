"""Sliding temporal windows: coverage, fusion, bounded UNet input, and one window == direct."""

import pytest
import torch

from sdvideo.sampling.windows import step_shift, window_starts, window_weights, windowed_prediction
from test_sampling_pipeline import load, make_run

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def pipe(tmp_path_factory):
    return load(make_run(tmp_path_factory.mktemp("sampling-windows")))


class CountingUNet:
    """Wraps `unet.forward` to record batch * frames of every call."""

    def __init__(self, unet):
        self.unet, self.sizes = unet, []
        self.forward = unet.forward

    def __enter__(self):
        def counted(sample, *args, **kwargs):
            self.sizes.append(sample.shape[0] * sample.shape[2])
            return self.forward(sample, *args, **kwargs)

        self.unet.forward = counted
        return self

    def __exit__(self, *exc):
        del self.unet.forward


def assert_full_windows_cover(starts, frames, window, overlap):
    """Every window full-length and inside the video, every frame covered, starts sorted and distinct,
    neighbours sharing at least `overlap` frames."""
    covered = torch.zeros(frames, dtype=torch.bool)
    for s in starts:
        assert 0 <= s and s + min(window, frames) <= frames
        covered[s : s + window] = True
    assert covered.all() and starts == sorted(set(starts))
    assert all(b - a <= window - overlap for a, b in zip(starts, starts[1:]))


@pytest.mark.parametrize("frames,window,overlap", [(10, 4, 2), (11, 4, 1), (9, 5, 4), (7, 7, 3), (3, 5, 2)])
def test_windows_cover_every_frame_with_full_windows(frames, window, overlap):
    assert_full_windows_cover(window_starts(frames, window, overlap), frames, window, overlap)
    assert window_weights(5).tolist() == [1, 2, 3, 2, 1]
    with pytest.raises(ValueError, match="overlap"):
        window_starts(10, 4, 4)


@pytest.mark.parametrize("frames,window,overlap", [(32, 8, 4), (11, 4, 1), (13, 5, 2)])
def test_shifted_tilings_cover_every_frame_and_move_the_hand_overs(frames, window, overlap):
    stride = window - overlap
    shifts = [step_shift(step, window, overlap) for step in range(4 * stride)]
    assert sorted(set(shifts)) == list(range(stride))  # every offset of the stride is used ...
    edges = set()
    for shift in range(stride):
        starts = window_starts(frames, window, overlap, shift)
        assert_full_windows_cover(starts, frames, window, overlap)
        assert starts[0] == 0 and starts[-1] == frames - window
        edges.add(tuple(s + window - 1 for s in starts[:-1]))  # a window's last frame: where it hands over
    assert len(edges) == stride  # ... and each puts the hand-overs elsewhere
    assert window_starts(frames, window, overlap, 0) == window_starts(frames, window, overlap)
    with pytest.raises(ValueError, match="shift"):
        window_starts(frames, window, overlap, stride)


def test_shifting_windows_changes_a_long_sample_but_not_one_window(pipe):
    kw = dict(num_frames=12, num_inference_steps=3, seed=5, window_size=4, window_overlap=2, output_type="latent")
    fixed, shifted = pipe("a", shift_windows=False, **kw).frames, pipe("a", **kw).frames  # shifted: the default
    assert torch.isfinite(shifted).all() and not torch.equal(fixed, shifted)
    one = dict(kw, num_frames=4)
    assert torch.equal(pipe("a", shift_windows=False, **one).frames, pipe("a", **one).frames)


def test_fusion_is_a_weighted_average_of_overlapping_predictions():
    x = torch.randn(2, 4, 13, 3, 3)
    # A per-frame predictor: every window agrees, so the fused result is exact.
    for step in (None, 0, 1, 2):  # fixed and shifted tilings
        fused = windowed_prediction(lambda s, e: x[:, :, s:e] * 2 + 1, 13, window=5, overlap=3, step=step)
        assert torch.allclose(fused, x * 2 + 1, atol=1e-6)
    # Windows that disagree are blended: each frame is a convex mix of its windows' values.
    fused = windowed_prediction(lambda s, e: torch.full((1, 1, e - s, 1, 1), float(s)), 13, window=5, overlap=3)
    starts = window_starts(13, 5, 3)
    for f in range(13):
        values = [s for s in starts if s <= f < s + 5]
        assert min(values) - 1e-6 <= fused[0, 0, f].item() <= max(values) + 1e-6


def test_unet_input_is_bounded_by_the_window_for_any_length(pipe):
    window = 4
    biggest = {}
    for frames in (9, 20):
        with CountingUNet(pipe.unet) as counter:
            video = pipe("a", num_frames=frames, num_inference_steps=2, seed=0, window_size=window,
                         window_overlap=2, output_type="latent").frames
        assert video.shape == (1, 4, frames, 8, 8) and torch.isfinite(video).all()
        biggest[frames] = max(counter.sizes)
        # One call per window per step; the tiling (and so the count of windows) moves with the step.
        calls = sum(len(window_starts(frames, window, 2, step_shift(i, window, 2))) for i in (0, 1))
        assert len(counter.sizes) == calls
    # One prompt with classifier-free guidance: at most 2 x window frames per UNet call, whatever the length.
    assert biggest[9] == biggest[20] == 2 * window


@pytest.mark.parametrize("window", [5, 8])
def test_one_window_equals_direct_sampling_exactly(pipe, window):
    kw = dict(num_frames=5, num_inference_steps=3, seed=2, output_type="latent")
    direct = pipe(["a", "b"], **kw).frames
    windowed = pipe(["a", "b"], window_size=window, **kw).frames
    assert torch.equal(direct, windowed)


def test_windowed_long_video_is_deterministic_and_decodes(pipe):
    kw = dict(num_frames=12, num_inference_steps=2, seed=5, window_size=4, window_overlap=3)
    a, b = pipe("a", **kw).frames, pipe("a", **kw).frames
    assert a.shape == (1, 12, 3, 16, 16) and torch.equal(a, b)
