"""ClipDataset options (strides, images, crop, flip) and ClipBatchSampler (homogeneous batches,
determinism with DataLoader workers, disjoint shards per rank)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

import media
from sdvideo.data.cache import load_cache_info, load_video_latents
from sdvideo.data.dataset import ClipDataset, ClipKey
from sdvideo.data.prepare import prepare
from sdvideo.data.sampler import ClipBatchSampler, make_loader
from sdvideo.models.base import build_base


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("sampler_clips")
    media.write_video(d / "a.mkv", 60, 30, 40, 32)  # 20 frames at 10 fps
    media.write_video(d / "b.mkv", 42, 30, 40, 32)  # 14
    media.write_gif(d / "c.gif", frames=12, fps=10, width=40, height=32)  # 12
    out = tmp_path_factory.mktemp("sampler_cache")
    prepare([d], out, build_base("tiny", seed=0), fps=10, size=32, progress=False, caption="c")
    return out


@pytest.fixture(scope="module")
def full(cache_dir):
    """Every video's cached latents, float32 (T, C, 16, 16)."""
    return [load_video_latents(cache_dir, v).float() for v in load_cache_info(cache_dir)["videos"]]


def clip_of(full, item):
    """The cached frames an item claims to be: (C, frames, h, w)."""
    video = full[item["video"]]
    n = item["latents"].shape[1]
    return video[item["start"] : item["start"] + (n - 1) * item["stride"] + 1 : item["stride"]].permute(1, 0, 2, 3)


def test_multi_stride_clips_carry_their_fps(cache_dir, full):
    ds = ClipDataset(cache_dir, frames=3, strides=[1, 2, 4], seed=1)
    assert len(ds) == (20 - 2) + (14 - 2) + (12 - 2)  # anchors of the smallest stride
    seen = set()
    for i in range(len(ds)):
        item = ds[i]
        seen.add(item["stride"])
        assert item["fps"] == 10.0 / item["stride"] and item["latents"].shape == (4, 3, 16, 16)
        assert torch.equal(item["latents"], clip_of(full, item))
        assert item["start"] + 2 * item["stride"] < full[item["video"]].shape[0]
    assert seen == {1, 2, 4}
    again = ClipDataset(cache_dir, frames=3, strides=[1, 2, 4], seed=1)
    assert all(again[i]["stride"] == ds[i]["stride"] for i in range(len(ds)))  # deterministic
    ds.set_epoch(1)
    assert any(ds[i]["stride"] != again[i]["stride"] for i in range(len(ds)))  # redrawn per epoch
    assert ds[ClipKey(5, 0)]["stride"] == again[5]["stride"]  # a key carries its epoch


def test_image_items_crop_and_flip(cache_dir, full):
    ds = ClipDataset(cache_dir, frames=5)
    assert ds.num_images == 46
    item = ds[ClipKey(21, 0, True)]  # video 1, frame 1
    assert item["is_image"] and item["latents"].shape == (4, 1, 16, 16) and item["fps"] == 10.0
    assert (item["video"], item["start"]) == (1, 1)
    assert torch.equal(item["latents"][:, 0], full[1][1])
    aug = ClipDataset(cache_dir, frames=5, random_crop=8, flip=True, seed=0)
    flips = 0
    for i in range(0, len(aug), 3):
        item = aug[i]
        assert item["latents"].shape == (4, 5, 8, 8)
        whole = clip_of(full, item)  # (4, 5, 16, 16): find the 8x8 window (maybe mirrored)
        hits = [(y, x, f) for y in range(9) for x in range(9) for f in (False, True)
                if torch.equal(item["latents"], (whole.flip(-1) if f else whole)[..., y : y + 8, x : x + 8])]
        assert hits, i
        flips += hits[0][2]
    assert 0 < flips < len(range(0, len(aug), 3))


def test_batches_are_homogeneous_and_the_ratio_holds(cache_dir):
    ds = ClipDataset(cache_dir, frames=5, image_ratio=0.25)
    sampler = ClipBatchSampler(ds, 4)
    video_steps = len(ds) // 4  # 34 clips -> 8 batches
    assert len(sampler) == video_steps + round(video_steps / 3) == 11
    kinds = [{k.image for k in batch} for batch in sampler]
    assert all(len(k) == 1 for k in kinds) and sum(k == {True} for k in kinds) == 3
    loader = DataLoader(ds, batch_sampler=sampler)
    shapes = {(tuple(b["latents"].shape), bool(b["is_image"][0])) for b in loader}
    assert shapes == {((4, 4, 5, 16, 16), False), ((4, 4, 1, 16, 16), True)}
    only_images = ClipBatchSampler(ds, 4, image_ratio=1.0)
    assert len(only_images) == 46 // 4 and all(k.image for b in only_images for k in b)
    with pytest.raises(ValueError, match="fewer than one batch"):
        ClipBatchSampler(ds, 32, world_size=2)


def test_two_workers_give_the_same_batches_as_the_main_process(cache_dir):
    ds = ClipDataset(cache_dir, frames=3, strides=[1, 2], image_ratio=0.3, random_crop=6, flip=True, seed=5)

    def epoch_batches(workers):
        loader = make_loader(ds, 3, num_workers=workers, persistent_workers=workers > 0)
        loader.batch_sampler.set_epoch(2)
        return list(loader)

    main, workers = epoch_batches(0), epoch_batches(2)
    assert len(main) == len(workers) > 0
    for a, b in zip(main, workers):
        assert torch.equal(a["latents"], b["latents"]) and torch.equal(a["text"], b["text"])
        assert torch.equal(a["fps"], b["fps"]) and torch.equal(a["is_image"], b["is_image"])


@pytest.mark.parametrize("drop_last", [True, False])
def test_ranks_get_disjoint_shards_that_cover_the_epoch(cache_dir, drop_last):
    ds = ClipDataset(cache_dir, frames=5, image_ratio=0.2)
    for epoch in (0, 1):
        plans = []
        for rank in (0, 1):
            sampler = ClipBatchSampler(ds, 4, rank=rank, world_size=2, drop_last=drop_last)
            sampler.set_epoch(epoch)
            plans.append(sampler.plan())
        assert len(plans[0]) == len(plans[1]) > 0  # same number of batches on every rank
        assert [b[0].image for b in plans[0]] == [b[0].image for b in plans[1]]  # same kind per step
        videos = [[k.index for b in plan for k in b if not k.image] for plan in plans]
        images = [[k.index for b in plan for k in b if k.image] for plan in plans]
        per_step = 4 * 2
        if drop_last:
            assert not set(videos[0]) & set(videos[1]) and not set(images[0]) & set(images[1])
            assert len(set(videos[0]) | set(videos[1])) == len(ds) // per_step * per_step  # 34 -> 32
        else:  # the last step is filled up from the start of the permutation: everything is seen
            assert set(videos[0]) | set(videos[1]) == set(range(len(ds)))
        assert all(k.epoch == epoch for plan in plans for b in plan for k in b)
    first = ClipBatchSampler(ds, 4, rank=0, world_size=2)
    order0 = [k.index for b in first.plan() for k in b]
    first.set_epoch(1)
    assert [k.index for b in first.plan() for k in b] != order0  # a new order per epoch
    assert np.all(np.diff([k.index for b in ClipBatchSampler(ds, 4, shuffle=False, image_ratio=0).plan()
                           for k in b]) == 1)


def test_held_out_part_keeps_every_stride_and_image_on_its_side(cache_dir, full):
    # Videos of 20, 14 and 12 frames; holdout 0.25 of 3-frame clips: tails of 5, 4 (round 3.5) and 3 frames.
    boundaries = [15, 10, 9]
    train = ClipDataset(cache_dir, frames=3, strides=[1, 2, 4], image_ratio=0.5, seed=2, holdout=0.25, part="train")
    val = ClipDataset(cache_dir, frames=3, strides=[1, 2, 4], seed=2, holdout=0.25, part="val")
    assert len(train) == (15 - 2) + (10 - 2) + (9 - 2) and len(val) == (5 - 2) + (4 - 2) + (3 - 2)
    for epoch in (0, 1):
        for part, inside in ((train, lambda v, a, b: b <= boundaries[v]), (val, lambda v, a, b: a >= boundaries[v])):
            part.set_epoch(epoch)
            for i in range(len(part)):
                item = part[i]
                end = item["start"] + 2 * item["stride"] + 1
                assert inside(item["video"], item["start"], end), (item["video"], item["start"], item["stride"])
                assert torch.equal(item["latents"], clip_of(full, item))
    assert train.num_images == 15 + 10 + 9
    for j in range(train.num_images):
        item = train[ClipKey(j, 0, True)]
        assert item["start"] < boundaries[item["video"]]
        assert torch.equal(item["latents"][:, 0], full[item["video"]][item["start"]])
    everything = ClipDataset(cache_dir, frames=3, holdout=0.0, part="val")  # no holdout: every clip
    assert len(everything) == len(ClipDataset(cache_dir, frames=3)) == 18 + 12 + 10
    with pytest.raises(ValueError, match="no held-out clip of 12 frames.*--val-holdout 0") as err:
        ClipDataset(cache_dir, frames=12, holdout=0.5, part="val")  # every video too short to split
    assert "\n" not in str(err.value)


def test_from_batch_resumes_the_epoch_plans(cache_dir):
    ds = ClipDataset(cache_dir, frames=5, image_ratio=0.25)
    sampler = ClipBatchSampler(ds, 2, image_batch_size=6, seed=4)
    plans = []
    for epoch in range(3):
        sampler.set_epoch(epoch)
        plans += sampler.plan()
    n = len(plans) // 3
    stream = ClipBatchSampler(ds, 2, image_batch_size=6, seed=4).from_batch(0)
    assert [next(stream) for _ in range(len(plans))] == plans
    resumed = ClipBatchSampler(ds, 2, image_batch_size=6, seed=4).from_batch(n + 3)
    assert [next(resumed) for _ in range(n)] == plans[n + 3 : 2 * n + 3]
    sizes = {(b[0].image, len(b)) for b in plans}
    assert sizes == {(False, 2), (True, 6)}


def test_a_small_image_ratio_on_few_clips_still_gets_image_batches(cache_dir):
    # 34 clips / batch 8 = 4 video steps per epoch; ratio 0.1 -> 0.44 image steps per epoch on average.
    ds = ClipDataset(cache_dir, frames=5, image_ratio=0.1)
    sampler = ClipBatchSampler(ds, 8, seed=1)
    plans = []
    for epoch in range(9):
        sampler.set_epoch(epoch)
        plans.append(sampler.plan())
        assert len(plans[-1]) == len(sampler)
    images = sum(b[0].image for plan in plans for b in plan)
    assert images == round(9 * 4 * 0.1 / 0.9) == 4
    flat = [b for plan in plans for b in plan]
    for start in (0, 3, 5, 13, 21, 30):
        stream = ClipBatchSampler(ds, 8, seed=1).from_batch(start)
        assert [next(stream) for _ in range(len(flat) - start)] == flat[start:]
