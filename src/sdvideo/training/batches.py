"""The batches training reads: the cache's clips split into training and held-out parts, ordered by
`ClipBatchSampler` (deterministic, sharded by process, resumable at any batch), read ahead in threads.

Training clips come at every configured stride (multi-frame-rate training) with the augmentations
(random crop, flip); a share `image_ratio` of the batches are single frames, batch x frames of them,
trained with the temporal layers off (joint image-video training). Held-out clips are whole.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from itertools import islice
from typing import Any

from torch.utils.data import default_collate

from ..data.cache import load_cache_info
from ..data.dataset import ClipDataset, ClipKey
from ..data.sampler import ClipBatchSampler
from .config import TrainConfig


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


def clip_set(cfg: TrainConfig, part: str) -> ClipDataset:
    """The training ("train") or held-out ("val") clips: the end `val_holdout` share of each video is
    held out (with `val_holdout` 0 both parts are every clip)."""
    train = part == "train"
    return ClipDataset(cfg.data, frames=cfg.frames, strides=cfg.strides, seed=cfg.seed,
                       image_ratio=cfg.image_ratio if train else 0.0, random_crop=_latent_crop(cfg) if train else None,
                       flip=cfg.flip and train, holdout=cfg.val_holdout, part=part)


def validation_set(cfg: TrainConfig) -> ClipDataset:
    return clip_set(cfg, "val")


def validation_sets(cfg: TrainConfig) -> dict[str, ClipDataset]:
    """What `--val-every` measures: "held-out" (each video's held-out tail), "training" (training
    clips at the base stride, unaugmented: the gap between the two shows overfitting) and, per
    `--val-data` cache, "unseen" ("unseen-2", ...): every clip of videos no stage trained on."""
    stride = min(cfg.strides or [1])
    sets = {"held-out": validation_set(cfg),
            "training": ClipDataset(cfg.data, frames=cfg.frames, stride=stride, seed=cfg.seed,
                                    holdout=cfg.val_holdout, part="train")}
    for i, cache in enumerate(cfg.val_data):
        sets["unseen" if i == 0 else f"unseen-{i + 1}"] = ClipDataset(cache, frames=cfg.frames, stride=stride,
                                                                       seed=cfg.seed)
    return sets


def training_batches(cfg: TrainConfig, rank: int = 0, world: int = 1) -> Callable[[int], Iterator[dict[str, Any]]]:
    """`batches(consumed)` yields this process's batches from global batch number `consumed` on, forever."""
    clips = clip_set(cfg, "train")
    # An image batch costs about what a video batch does: batch x frames single frames.
    sampler = ClipBatchSampler(clips, cfg.batch_size, rank=rank, world_size=world, seed=cfg.seed,
                               image_batch_size=cfg.batch_size * cfg.frames)

    def read(keys: list[ClipKey]) -> dict[str, Any]:
        items = [clips[key] for key in keys]
        out = default_collate([{k: it[k] for k in ("latents", "text", "fps")} for it in items])
        out["fps"] = out["fps"].float()
        out["is_image"] = keys[0].image
        return out

    def batches(consumed: int) -> Iterator[dict[str, Any]]:
        keys = sampler.from_batch(consumed)
        if cfg.num_workers > 0:
            yield from _read_ahead(read, keys, cfg.num_workers)
        else:
            yield from map(read, keys)

    return batches


def _read_ahead(read: Callable[[list[ClipKey]], dict[str, Any]], keys: Iterator[list[ClipKey]],
                workers: int) -> Iterator[dict[str, Any]]:
    """Read batches ahead in a thread pool (file reads release the GIL), keeping their order. Items
    are pure functions of their keys, so the threads share the dataset without races."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(workers) as pool:
        pending = deque(pool.submit(read, k) for k in islice(keys, workers * 2))
        while pending:
            yield pending.popleft().result()
            for k in islice(keys, 1):
                pending.append(pool.submit(read, k))
