"""`ClipBatchSampler`: homogeneous, deterministic, rank-sharded batches of `ClipKey`s for `ClipDataset`.

Each batch is all-video (B clips of `frames` frames, stride drawn per item) or all-image (B_img
single frames; B_img = `image_batch_size`, default B), so default collation works. Per epoch, every
rank computes the same global plan from (seed, epoch) and takes its own part:

  video steps: a permutation of the anchors, cut (drop_last) or wrapped (not drop_last) to a multiple
               of B * world_size, reshaped to (steps, world_size, B); rank r takes [:, r].
  image steps: video steps * image_ratio / (1 - image_ratio) steps of B_img frames on average,
               rounded on the running total over epochs (so a small dataset still gets its share),
               drawn the same way from a permutation of the dataset's frames (image_ratio = 1: image
               steps only, one pass over the frames). So `image_ratio` is the share of image batches.
  order:       video and image steps shuffled together (the same order on every rank, so all ranks
               run image batches at the same step and every rank has the same number of batches).

Ranks therefore see disjoint samples that together cover the epoch (up to the drop_last remainder).
Keys carry the epoch, so DataLoader workers (persistent or not) produce the same items as the main
process would; call `set_epoch(epoch)` before each epoch, or iterate `from_batch(k)`: every batch from
global batch number k on, across epochs, without planning the ones before (resuming a run).

Under `accelerate` build it with rank=accelerator.process_index, world_size=accelerator.num_processes
and do not pass the DataLoader through `accelerator.prepare` (it would shard it a second time).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
from torch.utils.data import DataLoader, Sampler

from sdvideo.data.dataset import ClipDataset, ClipKey


class ClipBatchSampler(Sampler[list[ClipKey]]):
    def __init__(self, dataset: ClipDataset, batch_size: int, *, image_ratio: float | None = None,
                 shuffle: bool = True, drop_last: bool = True, rank: int = 0, world_size: int = 1,
                 seed: int | None = None, epoch: int = 0, image_batch_size: int | None = None) -> None:
        if batch_size < 1 or world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"need batch_size >= 1 and 0 <= rank < world_size, got batch_size={batch_size}, "
                             f"rank={rank}, world_size={world_size}")
        self.dataset, self.batch_size = dataset, int(batch_size)
        self.image_batch_size = int(image_batch_size or batch_size)
        self.image_ratio = float(dataset.image_ratio if image_ratio is None else image_ratio)
        if not 0.0 <= self.image_ratio <= 1.0:
            raise ValueError(f"image_ratio must be in [0, 1], got {self.image_ratio}")
        self.shuffle, self.drop_last = shuffle, drop_last
        self.rank, self.world_size = int(rank), int(world_size)
        self.seed = int(dataset.seed if seed is None else seed)
        self.epoch = int(epoch)
        if len(self) == 0:
            n = len(dataset) if self.image_ratio < 1 else dataset.num_images
            size = batch_size if self.image_ratio < 1 else self.image_batch_size
            raise ValueError(f"{dataset.cache_dir}: {n} samples are fewer than one batch per rank "
                             f"(batch size {size} x {world_size} ranks); lower --batch-size or "
                             "prepare more video")

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _steps(self, n: int, batch_size: int) -> int:
        per_step = batch_size * self.world_size
        return n // per_step if self.drop_last else math.ceil(n / per_step)

    def _rates(self) -> tuple[int, float]:
        """(video steps, image steps) per epoch on average; the same on every rank."""
        if self.image_ratio >= 1.0:
            return 0, self._steps(self.dataset.num_images, self.image_batch_size)
        video = self._steps(len(self.dataset), self.batch_size)
        return video, video * self.image_ratio / (1.0 - self.image_ratio)

    def _batches_before(self, epoch: int) -> int:
        """Batches in epochs 0 .. epoch - 1. Image steps are counted over all epochs so far, so a small
        dataset with a small image_ratio still gets its share of image batches (in some epochs)."""
        video, images = self._rates()
        return epoch * video + math.floor(epoch * images + 0.5)

    def _counts(self) -> tuple[int, int]:
        """(video steps, image steps) of the current epoch."""
        video, _ = self._rates()
        total = self._batches_before(self.epoch + 1) - self._batches_before(self.epoch)
        return video, total - video

    def __len__(self) -> int:
        return sum(self._counts())

    def _take(self, rng: np.random.Generator, n: int, steps: int, batch_size: int) -> np.ndarray:
        """This rank's (steps, batch_size) indices out of a permutation of range(n) (wrapped when short)."""
        order = rng.permutation(n) if self.shuffle else np.arange(n)
        order = np.resize(order, steps * batch_size * self.world_size)  # cuts, or repeats from the start to fill
        return order.reshape(steps, self.world_size, batch_size)[:, self.rank]

    def plan(self) -> list[list[ClipKey]]:
        """This rank's batches for the current epoch."""
        rng = np.random.default_rng([self.seed, self.epoch, 7])
        video_steps, image_steps = self._counts()
        video = self._take(rng, len(self.dataset), video_steps, self.batch_size)
        image = self._take(rng, self.dataset.num_images, image_steps, self.image_batch_size)
        kinds = np.array([False] * video_steps + [True] * image_steps)
        if self.shuffle:
            rng.shuffle(kinds)
        batches, nv, ni = [], 0, 0
        for is_image in kinds:
            rows = image[ni] if is_image else video[nv]
            ni, nv = (ni + 1, nv) if is_image else (ni, nv + 1)
            batches.append([ClipKey(int(i), self.epoch, bool(is_image)) for i in rows])
        return batches

    def __iter__(self) -> Iterator[list[ClipKey]]:
        yield from self.plan()

    def from_batch(self, consumed: int) -> Iterator[list[ClipKey]]:
        """This rank's batches from global batch number `consumed` on, epoch after epoch, forever
        (batch k is the same whether reached by iterating or by starting here at k)."""
        video, images = self._rates()
        epoch = int(consumed // (video + images))
        while self._batches_before(epoch + 1) <= consumed:
            epoch += 1
        while self._batches_before(epoch) > consumed:
            epoch -= 1
        skip = int(consumed) - self._batches_before(epoch)
        while True:
            self.set_epoch(epoch)
            yield from self.plan()[skip:]
            epoch, skip = epoch + 1, 0


def make_loader(dataset: ClipDataset, batch_size: int, *, num_workers: int = 0, rank: int = 0,
                world_size: int = 1, shuffle: bool = True, drop_last: bool = True,
                **kwargs: Any) -> DataLoader:
    """A DataLoader over `ClipBatchSampler` (call `loader.batch_sampler.set_epoch(e)` each epoch).
    Extra keyword arguments (pin_memory, persistent_workers, ...) go to DataLoader."""
    sampler = ClipBatchSampler(dataset, batch_size, shuffle=shuffle, drop_last=drop_last, rank=rank,
                               world_size=world_size)
    return DataLoader(dataset, batch_sampler=sampler, num_workers=num_workers, **kwargs)
