"""The trainer's reading of the cache (`training.batches`): a video's captions are redrawn per epoch,
random crop / flip augment training clips only, and a crop that does not fit is a one-line error."""

from __future__ import annotations

import pytest
import torch

import media
from sdvideo.data.cache import load_cache_info, load_video_latents
from sdvideo.data.prepare import prepare
from sdvideo.models.base import build_base
from sdvideo.training.batches import training_batches, validation_set
from sdvideo.training.config import TrainConfig


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    """One 20-frame video (32 px -> 16x16 latents) with two captions (a sidecar with two lines)."""
    d = tmp_path_factory.mktemp("batches_clips")
    media.write_video(d / "a.mkv", 60, 30, 40, 32)
    (d / "a.txt").write_text("first caption\nsecond caption\n", encoding="utf-8")
    out = tmp_path_factory.mktemp("batches_cache")
    prepare([d], out, build_base("tiny", seed=0), fps=10, size=32, progress=False)
    return out


def config(cache_dir, **kw) -> TrainConfig:
    kw.setdefault("val_holdout", 0.0)
    return TrainConfig(data=str(cache_dir), base="unused", out="unused", frames=5, batch_size=1, **kw)


def test_captions_are_redrawn_each_epoch(cache_dir):
    batches = training_batches(config(cache_dir))
    per_epoch = 16  # 20 frames -> 16 clips of 5, batch size 1
    full = load_video_latents(cache_dir, load_cache_info(cache_dir)["videos"][0]).float()

    def captions(epoch_batches):  # start frame of the clip -> which caption it came with
        seen = {}
        for b in epoch_batches:
            start = next(s for s in range(16) if torch.equal(b["latents"][0, :, 0], full[s]))
            seen[start] = b["text"][0, 1, 0].item()  # token 1 differs between the two captions
        return seen

    stream = batches(0)
    epochs = [captions(next(stream) for _ in range(per_epoch)) for _ in range(3)]
    assert all(sorted(e) == list(range(16)) for e in epochs)  # every clip once per epoch
    assert len({v for e in epochs for v in e.values()}) == 2  # both captions are used
    assert any(epochs[0][s] != epochs[1][s] or epochs[1][s] != epochs[2][s] for s in range(16))
    again = training_batches(config(cache_dir))(per_epoch + 3)  # resumed mid-epoch 1: same batches
    for b in (next(again) for _ in range(3)):
        start = next(s for s in range(16) if torch.equal(b["latents"][0, :, 0], full[s]))
        assert b["text"][0, 1, 0].item() == epochs[1][start]


def test_random_crop_and_flip_apply_to_training_clips_only(cache_dir):
    full = load_video_latents(cache_dir, load_cache_info(cache_dir)["videos"][0]).float()  # (20, 4, 16, 16)
    cfg = config(cache_dir, random_crop=16, flip=True, val_holdout=0.25)  # 16 px -> 8x8 latents
    stream = training_batches(cfg)(0)
    flips = 0
    for _ in range(12):
        clip = next(stream)["latents"][0]  # (4, 5, 8, 8)
        assert clip.shape == (4, 5, 8, 8)
        hits = [(s, y, x, f) for s in range(16) for y in range(9) for x in range(9) for f in (False, True)
                if torch.equal(clip[:, 0], (full[s].flip(-1) if f else full[s])[:, y : y + 8, x : x + 8])]
        assert hits
        flips += hits[0][3]
    assert 0 < flips < 12
    val = validation_set(cfg)
    assert val[0]["latents"].shape == (4, 5, 16, 16)  # held-out clips are whole frames
    with pytest.raises(ValueError, match="--random-crop 21 must be a multiple of 2 px") as err:
        training_batches(config(cache_dir, random_crop=21))
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="at most the cache's size 32"):
        training_batches(config(cache_dir, random_crop=64))
