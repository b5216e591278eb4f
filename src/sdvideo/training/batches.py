"""The order in which training sees batches: deterministic, sharded by process, resumable.

Batch k of the run is a pure function of (seed, k, rank): each epoch is a seeded permutation of the
training clips, split into disjoint shares per process, and a run resumed after `consumed` batches
continues with batch `consumed` without reading the ones before it. A share of batches can be
single frames ("images", trained with the temporal layers off: joint image-video training).
"""

from __future__ import annotations

import bisect
import random
from typing import Any, Callable, Iterator

import torch
from torch.utils.data import ConcatDataset, Dataset, Subset, default_collate

from ..data.cache import load_cache_info
from ..data.dataset import ClipDataset, ClipKey
from .config import TrainConfig


def _split(dataset: ClipDataset, holdout: float, part: str) -> list[int]:
    """Clip indices wholly before (train) or wholly after (val) each video's held-out tail."""
    keep = []
    for i in range(len(dataset)):
        v, start = dataset.locate(i)
        total = dataset.video_frames(v)
        tail = max(dataset.span, int(round(total * holdout)))  # at least one whole held-out clip
        boundary = total - tail if total - tail >= dataset.span else total  # too short to split: all train
        end = start + dataset.span
        if (part == "train" and end <= boundary) or (part == "val" and start >= boundary):
            keep.append(i)
    return keep


def _latent_crop(cfg: TrainConfig) -> int | None:
    """`random_crop` (pixels) in latent units, checked against the cache; None when off."""
    pixels = int(cfg.random_crop or 0)
    if not pixels:
        return None
    info = load_cache_info(cfg.data)
    size, latent = int(info["size"]), int(info["latent_shape"][-1])
    factor = size // latent  # VAE downsampling (8 for SD)
    if pixels % factor or not 0 < pixels <= size:
        raise ValueError(f"--random-crop {pixels} must be a multiple of {factor} px (the VAE's downsampling) "
                         f"and at most the cache's size {size}; prepare at a larger --size to crop more")
    return pixels // factor


def clip_set(cfg: TrainConfig, part: str, frames: int | None = None) -> Dataset:
    """Training or held-out clips over every configured stride (multi-frame-rate training).
    Training clips get the augmentations (random crop, flip); held-out clips are whole."""
    strides = cfg.strides or [cfg.stride]
    train = part == "train"
    crop = _latent_crop(cfg) if train else None
    flip = cfg.flip and train
    parts = []
    for stride in strides:
        try:
            ds = ClipDataset(cfg.data, frames=frames or cfg.frames, stride=stride, random_crop=crop, flip=flip,
                             seed=cfg.seed)
        except ValueError:
            if len(strides) > 1 and stride != strides[0]:
                continue  # a longer stride may not fit short videos; the others still train
            raise
        idx = _split(ds, cfg.val_holdout, part) if cfg.val_holdout > 0 else list(range(len(ds)))
        if idx:
            parts.append(Subset(ds, idx))
    if not parts:
        raise ValueError(
            f"{cfg.data}: no {part} clips of {frames or cfg.frames} frames once {cfg.val_holdout:.0%} of each video "
            "is held out for validation; use fewer --frames, a smaller --val-holdout or longer videos"
        )
    return ConcatDataset(parts)


def validation_set(cfg: TrainConfig) -> Dataset:
    return clip_set(cfg, "val")


def training_batches(cfg: TrainConfig, rank: int = 0, world: int = 1) -> Callable[[int], Iterator[dict[str, Any]]]:
    """`batches(consumed)` yields this process's batches from global batch number `consumed` on, forever."""
    videos = clip_set(cfg, "train")
    images = clip_set(cfg, "train", frames=1) if cfg.image_ratio > 0 else None
    image_batch = cfg.batch_size * cfg.frames  # an image batch costs about what a video batch does
    per_epoch = len(videos) // (cfg.batch_size * world)
    if per_epoch == 0:
        raise ValueError(f"{cfg.data}: {len(videos)} training clips are fewer than batch size {cfg.batch_size} "
                         f"x {world} processes")

    def batch(k: int) -> dict[str, Any]:
        epoch, j = divmod(k, per_epoch)
        if images is not None and random.Random(f"{cfg.seed}-image-{k}").random() < cfg.image_ratio:
            order = torch.randperm(len(images), generator=torch.Generator().manual_seed(cfg.seed * 7919 + k))
            picks = order[rank * image_batch : (rank + 1) * image_batch] % len(images)
            return _collate([_item(images, int(i), k) for i in picks], is_image=True)
        order = torch.randperm(len(videos), generator=torch.Generator().manual_seed(cfg.seed * 104729 + epoch))
        start = (j * world + rank) * cfg.batch_size
        return _collate([_item(videos, int(i), epoch) for i in order[start : start + cfg.batch_size]],
                        is_image=False)

    def batches(consumed: int) -> Iterator[dict[str, Any]]:
        if cfg.num_workers > 0:
            yield from _prefetched(batch, consumed, cfg.num_workers)
            return
        k = consumed
        while True:
            yield batch(k)
            k += 1

    return batches


def _item(clips: ConcatDataset, i: int, epoch: int) -> dict[str, Any]:
    """Clip i of `clip_set`'s dataset with the random choices of `epoch` (caption among the video's
    captions, crop, flip): the same clip gets fresh draws each epoch, batch k stays a pure function
    of k (and no shared dataset state changes, so the reading threads cannot race)."""
    d = bisect.bisect_right(clips.cumulative_sizes, i)
    j = i - (clips.cumulative_sizes[d - 1] if d else 0)
    part: Subset = clips.datasets[d]  # type: ignore[assignment]
    return part.dataset[ClipKey(int(part.indices[j]), epoch)]


def _collate(items: list[dict[str, Any]], is_image: bool) -> dict[str, Any]:
    out = default_collate([{k: it[k] for k in ("latents", "text", "fps")} for it in items])
    out["fps"] = out["fps"].float()
    out["is_image"] = is_image
    return out


def _prefetched(batch: Callable[[int], dict[str, Any]], consumed: int, workers: int) -> Iterator[dict[str, Any]]:
    """Read batches ahead in a thread pool (file reads release the GIL), keeping their order."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(workers) as pool:
        pending = [pool.submit(batch, consumed + i) for i in range(workers * 2)]
        k = consumed + len(pending)
        while True:
            yield pending.pop(0).result()
            pending.append(pool.submit(batch, k))
            k += 1
