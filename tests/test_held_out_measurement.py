"""What the held-out measurements rest on: every clip asked for, paired intervals, the two controls."""

import csv
import warnings

import numpy as np
import pytest
import torch

from sdvideo.data.dataset import ClipDataset, holdout_boundary
from sdvideo.eval.loss_buckets import bucket_losses, frame_shuffle, paired_difference, shuffled_frames
from sdvideo.models.base import load_base
from sdvideo.models.video_unet import inflate
from sdvideo.sampling.export import tile_videos
from sdvideo.training.validation import (Validator, held_out_clips, trim_validation_rows, video_predictor)

pytestmark = pytest.mark.usefixtures("one_thread")


class Clips:
    """A stand-in dataset: `counts[v]` clips of video v, each item naming its video and index."""

    def __init__(self, counts):
        self.where = [(v, k) for v, n in enumerate(counts) for k in range(n)]

    def __len__(self):
        return len(self.where)

    def locate(self, i):
        return self.where[i]

    def __getitem__(self, i):
        return dict(index=i, video=self.where[i][0])


def test_held_out_clips_take_every_clip_when_asked_for_more():
    # 5 clips, 8 asked for: all 5 (the old even spacing kept 3 of them)
    items = held_out_clips(Clips([5]), 8)
    assert [it["index"] for it in items] == [0, 1, 2, 3, 4]


def test_held_out_clips_spread_over_every_video():
    # one long video must not crowd out the short ones
    items = held_out_clips(Clips([100, 1, 2]), 6)
    videos = [it["video"] for it in items]
    assert videos.count(1) == 1 and videos.count(2) == 2 and videos.count(0) == 3
    first = [it["index"] for it in items if it["video"] == 0]
    assert first == [0, 50, 99]  # evenly spaced through the long video
    assert len({it["index"] for it in held_out_clips(Clips([100, 1, 2]), 40)}) == 40


def test_validator_warns_when_it_measures_fewer_clips(tiny_cache):
    held_out = ClipDataset(tiny_cache, frames=3, holdout=0.2, part="val")
    with pytest.warns(UserWarning, match=f"measured {len(held_out)} clips of the 50 asked for"):
        validator = Validator(held_out, clips=50)
    assert len(validator.latents) == len(held_out)


def test_image_phase_frames_stop_at_the_held_out_boundary(tiny_cache):
    # the image phase reads ClipDataset(part="train") images: exactly the frames before each video's tail
    train = ClipDataset(tiny_cache, frames=3, holdout=0.25, part="train")
    held_out = ClipDataset(tiny_cache, frames=3, holdout=0.25, part="val")
    totals = [train.video_frames(v) for v in range(2)]
    assert train.num_images == sum(holdout_boundary(n, 3, 0.25) for n in totals)
    assert train.num_images + held_out.num_images == sum(totals)
    for v, n in enumerate(totals):
        starts = {train.locate(i)[1] + 2 for i in range(len(train)) if train.locate(i)[0] == v}
        assert max(starts) < holdout_boundary(n, 3, 0.25)  # no training clip reaches into the tail


def test_paired_difference_interval_covers_the_mean_and_sees_every_bucket():
    rng = np.random.default_rng(0)
    b = rng.uniform(0.5, 1.0, (40, 3))
    a = b - 0.05 + rng.normal(0, 0.01, (40, 3))  # lower in every bucket, by about 10 %
    d = paired_difference(a, b)
    assert d["lower_in_every_bucket"] and d["mean_ci"][0] < d["mean"] < d["mean_ci"][1] < 0
    assert d["relative"] == pytest.approx(-0.05 / b.mean(), rel=0.1)
    a[:, 1] = b[:, 1] + 0.01
    assert not paired_difference(a, b)["lower_in_every_bucket"]


def test_frame_shuffle_moves_every_frame():
    for frames in (2, 3, 8, 16):
        order = frame_shuffle(frames)
        assert sorted(order.tolist()) == list(range(frames)) and bool((order != torch.arange(frames)).all())


def _perturbed(tiny_base_dir, **options):
    torch.manual_seed(0)
    video = inflate(load_base(tiny_base_dir).unet, **options).eval()
    for p in video.temporal_parameters():
        p.data.add_(0.1 * torch.randn_like(p))
    return video


def test_shuffled_frames_change_a_video_model_but_not_a_frame_wise_one(tiny_base_dir):
    base = load_base(tiny_base_dir)
    video = _perturbed(tiny_base_dir)
    gen = torch.Generator().manual_seed(0)
    latents, text = torch.randn(3, 4, 5, 8, 8, generator=gen), torch.randn(3, 77, 32, generator=gen)
    predictors = {"video": video_predictor(video, True), "independent": video_predictor(video, False),
                  "shuffled": shuffled_frames(video_predictor(video, True), 5),
                  "independent, shuffled": shuffled_frames(video_predictor(video, False), 5)}
    losses = bucket_losses(predictors, base.scheduler, latents, text, torch.full((3,), 6.0), buckets=2,
                           per_bucket=1, seeds=(1, 2), compare=[("video", "independent"), ("shuffled", "video")])
    assert losses["independent, shuffled"] == pytest.approx(losses["independent"], rel=1e-5)
    assert losses["shuffled"] != pytest.approx(losses["video"], rel=1e-4)
    assert set(losses["differences"]) == {"video vs independent", "shuffled vs video"}
    assert np.array(losses["per_clip"]["video"]).shape == (3, 2) and len(losses["video/x0"]) == 2
    assert losses["seeds"] == [1, 2]


def test_capacity_control_passes_nothing_between_frames(tiny_base_dir):
    gen = torch.Generator().manual_seed(1)
    x, text = torch.randn(1, 4, 5, 8, 8, generator=gen), torch.randn(1, 77, 32, generator=gen)
    changed = x.clone()
    changed[:, :, 2] += 1.0  # only frame 2 differs
    for options, leaks in (({}, True), (dict(temporal_kernel_size=1, temporal_context="frame"), False)):
        model = _perturbed(tiny_base_dir, **options)
        with torch.no_grad():
            a, b = model(x, 500, text, fps=6.0).sample, model(changed, 500, text, fps=6.0).sample
            off = model(x, 500, text, fps=6.0, enable_time=False).sample
        others = [0, 1, 3, 4]
        assert bool((a[:, :, others] != b[:, :, others]).any()) == leaks
        assert not torch.allclose(a, off)  # its temporal layers do change every frame's output
    with pytest.raises(ValueError, match="temporal_context"):
        inflate(load_base(tiny_base_dir).unet, temporal_context="clips")


def test_fps_embedding_is_off_with_the_temporal_layers(tiny_base_dir):
    model = _perturbed(tiny_base_dir)
    x, text = torch.randn(1, 4, 3, 8, 8), torch.randn(1, 77, 32)
    with torch.no_grad():
        slow, fast = (model(x, 500, text, fps=f, enable_time=False).sample for f in (2.0, 30.0))
        assert torch.equal(slow, fast)  # frames independent: the base model, whatever the fps
        assert not torch.equal(*(model(x, 500, text, fps=f).sample for f in (2.0, 30.0)))


def test_validation_rows_after_the_resumed_step_are_dropped(tmp_path):
    path = tmp_path / "validation.csv"
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows([["step", "set", "video"], [2, "held-out", 1.0], [4, "held-out", 0.9],
                                 [6, "held-out", 0.8]])
    trim_validation_rows(path, 4)
    assert [r[0] for r in csv.reader(open(path))] == ["step", "2", "4"]
    trim_validation_rows(path, 0)
    assert not path.exists()


def test_tile_videos_loops_shorter_clips():
    short = np.zeros((2, 4, 4, 3), np.uint8)
    short[1] = 200
    long = np.full((5, 4, 4, 3), 100, np.uint8)
    out = tile_videos([[short], [long, long]], pad=1)
    assert out.shape == (5, 2 * 5 + 1, 2 * 5 + 1, 3)
    assert [int(out[t, 1, 1, 0]) for t in range(5)] == [0, 200, 0, 200, 0]
    assert int(out[4, 6, 6, 0]) == 100 and int(out[0, 1, 6, 0]) == 255  # an empty tile stays white
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match="one size"):
            tile_videos([[short, np.zeros((2, 6, 6, 3), np.uint8)]])
