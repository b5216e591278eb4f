"""`ClipDataset`: latent clips (and a caption embedding) read memory-mapped from a latent cache.

Items. Item i (an int, or a `ClipKey` from `ClipBatchSampler`) is a dict:
  latents:  float32 (C, frames, h, w)   ((C, 1, h, w) for an image item)
  text:     float32 (77, dim)           one of the video's captions, drawn per item
  fps:      float                       cache fps / stride: the clip's frame rate (cache fps for images)
  video:    int                         index of the video in load_cache_info(...)["videos"]
  start, stride: int                    first frame and frame step of the clip
  is_image: bool                        True for single-frame "image" items

Clips. For the smallest stride s0, every run of (frames-1)*s0+1 frames inside one shot (scene cuts
split videos into shots, see `scenes.py`) is an anchor; len(dataset) = anchors. With `strides`
(multi-frame-rate training, as Make-A-Video), each item draws its stride from the set; a longer
clip is placed at the same relative position in its shot (or the largest stride that fits is used
when the shot is too short), and carries fps = cache fps / stride for fps conditioning.

Images. Keys with image=True index every frame of the part's shots (`num_images`);
`ClipBatchSampler` makes a share `image_ratio` of the batches all-image (so shapes in a batch agree)
for joint image-video training. Plain integer indexing (e.g. a DataLoader with shuffle=True) gives
video items only.

Held-out part. With `holdout=h` and `part="train"` or `"val"`, each video's last h share of frames
(at least one base-stride clip; none when the video is too short to spare one) belongs to "val",
the rest to "train": the part's shots are cut at that boundary, so clips of every stride and image
items stay on their side of it. `holdout=0` or `part="all"`: every frame.

Augmentation. Random crops happen on latents, so cache at a larger size and crop: `random_crop=c`
takes a random c x c latent window (c * 8 px for SD) of the cached h x w latents; `flip=True`
mirrors the latents horizontally with probability 1/2 (SD's VAE latents flip with the image to a
good approximation). Both apply to all frames of a clip alike.

Determinism. Every random choice of an item comes from numpy's generator seeded with
(seed, epoch, kind, index): the same key gives the same item in any process or DataLoader worker.
The epoch is part of a `ClipKey`; for integer indices it is `set_epoch(epoch)`'s value.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from safetensors import safe_open
from torch.utils.data import Dataset

from sdvideo.data.cache import TEXT_FILE, TEXT_KEY, empty_text_embedding, load_cache_info, shots
from sdvideo.data.shards import ShardReader

__all__ = ["ClipDataset", "ClipKey", "empty_text_embedding", "load_cache_info"]


def holdout_boundary(total: int, span: int, holdout: float) -> int:
    """First held-out frame of a video of `total` frames: its last `holdout` share, at least one clip
    of `span` frames; `total` (nothing held out) when the rest would be shorter than a clip."""
    tail = max(span, int(round(total * holdout)))
    return total - tail if total - tail >= span else total


class ClipKey(NamedTuple):
    """A dataset index with its epoch: `image=False` -> anchor `index`, True -> cached frame `index`."""

    index: int
    epoch: int = 0
    image: bool = False


class ClipDataset(Dataset):
    """Clips of `frames` latent frames at a stride from `strides` (default: just `stride`)."""

    def __init__(self, cache_dir: str | Path, frames: int = 5, stride: int = 1, *,
                 strides: Sequence[int] | None = None, image_ratio: float = 0.0,
                 random_crop: int | None = None, flip: bool = False, seed: int = 0,
                 holdout: float = 0.0, part: str = "all") -> None:
        if part not in ("all", "train", "val") or not 0.0 <= holdout < 1.0:
            raise ValueError(f"part must be all, train or val and holdout in [0, 1), got {part!r}, {holdout}")
        self.strides = sorted({int(s) for s in strides}) if strides else [int(stride)]
        if frames < 1 or self.strides[0] < 1:
            raise ValueError(f"frames and stride must be >= 1, got frames={frames}, strides={self.strides}")
        if not 0.0 <= image_ratio <= 1.0:
            raise ValueError(f"image_ratio must be in [0, 1], got {image_ratio}")
        self.cache_dir = Path(cache_dir)
        info = load_cache_info(self.cache_dir)
        videos = info.pop("videos")
        info.pop("skipped", None)
        self.info = info  # cache.json (what made the cache), without the per-video list
        self.frames, self.stride = int(frames), self.strides[0]
        self.image_ratio, self.seed, self.epoch, self.flip = float(image_ratio), int(seed), 0, bool(flip)
        self.cache_fps = float(info["fps"])
        self.fps = self.cache_fps / self.stride  # fps of clips at the base stride
        self.span = self.span_of(self.stride)  # source frames one base-stride clip covers
        latent_hw = int(info["latent_shape"][1]), int(info["latent_shape"][2])
        if random_crop is not None and not 0 < random_crop <= min(latent_hw):
            raise ValueError(f"random_crop {random_crop} must be within 1..{min(latent_hw)} (the cached "
                             f"latents are {latent_hw[0]}x{latent_hw[1]}); prepare at a larger --size")
        self.random_crop = random_crop

        # Compact numpy index (fork-friendly, no per-clip Python objects).
        self._shards = sorted({v["shard"] for v in videos})
        shard_id = {s: i for i, s in enumerate(self._shards)}
        self._v_shard = np.array([shard_id[v["shard"]] for v in videos], np.int32)
        self._v_offset = np.array([v["offset"] for v in videos], np.int64)
        self._v_frames = np.array([v["frames"] for v in videos], np.int64)
        self._v_shape = [tuple(v["shape"][1:]) for v in videos[:1]]  # (C, h, w), same for all
        # each video's crc32 (-1: none to check), checked by the reader on the video's first read (shards.py)
        item = 2 * int(np.prod(self._v_shape[0])) if videos else 0
        self._v_crc = np.array([v["crc32"] if "crc32" in v and v.get("nbytes") == v["frames"] * item else -1
                                for v in videos], np.int64)
        self._v_source = [str(v.get("source", v.get("key", ""))) for v in videos]
        caps = [v.get("captions") or [0] for v in videos]
        self._cap_ptr = np.cumsum([0] + [len(c) for c in caps]).astype(np.int64)
        self._cap_ids = np.array([j for c in caps for j in c], np.int64)
        segs = [(i, a, b - a) for i, v in enumerate(videos) for a, b in shots(v)]
        if part != "all" and holdout > 0:
            segs = self._part_of(segs, holdout, part)
        seg = np.array(segs, np.int64).reshape(-1, 3)  # (shot, [video, start, length]) of this part
        counts = np.maximum(0, seg[:, 2] - self.span + 1)
        keep = counts > 0
        self._seg_video, self._seg_start, self._seg_len = seg[keep, 0], seg[keep, 1], seg[keep, 2]
        self._anchor_cum = np.concatenate([[0], np.cumsum(counts[keep])]).astype(np.int64)
        # Image items: every frame of the part's shots, short shots included.
        self._img_video, self._img_start = seg[:, 0], seg[:, 1]
        self._img_cum = np.concatenate([[0], np.cumsum(seg[:, 2])]).astype(np.int64)
        self.num_images = int(self._img_cum[-1])
        if len(self) == 0 and part == "val":
            raise ValueError(
                f"cache {self.cache_dir} has no held-out clip of {frames} frames: no video's last {holdout:.0%} "
                f"holds one with {self.span} frames to spare before it; use fewer --frames, a larger --val-holdout, "
                "longer videos or --val-holdout 0 (validate on training clips)")
        if len(self) == 0:
            longest = int(seg[:, 2].max()) if len(seg) else 0
            raise ValueError(
                f"cache {self.cache_dir} has no shot long enough for clips of {frames} frames with stride "
                f"{self.stride} ({self.span} frames needed, longest {'training ' if part == 'train' else ''}shot has "
                f"{longest}); use fewer --frames, a smaller stride, longer videos or a higher --scene-threshold")
        self._reader = ShardReader(self.cache_dir)
        self._text: Any = None
        self._pid = os.getpid()

    def _part_of(self, segs: list[tuple[int, int, int]], holdout: float, part: str) -> list[tuple[int, int, int]]:
        """The shots (video, start, length) cut to this part's side of each video's held-out boundary."""
        out = []
        for v, start, length in segs:
            boundary = holdout_boundary(self.video_frames(v), self.span, holdout)
            if part == "train":
                lo, hi = start, min(start + length, boundary)
            else:
                lo, hi = max(start, boundary), start + length
            if hi > lo:
                out.append((v, lo, hi - lo))
        return out

    def video_frames(self, v: int) -> int:
        """Number of cached frames of video v."""
        return int(self._v_frames[v])

    def span_of(self, stride: int) -> int:
        return (self.frames - 1) * stride + 1

    def __len__(self) -> int:
        return int(self._anchor_cum[-1])

    def set_epoch(self, epoch: int) -> None:
        """Epoch used by integer indices (keys from ClipBatchSampler carry their own)."""
        self.epoch = int(epoch)

    def locate(self, i: int) -> tuple[int, int]:
        """Anchor i -> (video index, start frame) of its base-stride clip."""
        g, pos = self._anchor(i)
        return int(self._seg_video[g]), int(self._seg_start[g] + pos)

    def _anchor(self, i: int) -> tuple[int, int]:
        """Anchor i -> (shot index, offset of the start in the shot)."""
        n = len(self)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"clip index {i} out of range for {n} clips")
        g = int(np.searchsorted(self._anchor_cum, i, side="right")) - 1
        return g, i - int(self._anchor_cum[g])

    def __getitem__(self, i: int | ClipKey) -> dict[str, Any]:
        key = i if isinstance(i, ClipKey) else ClipKey(int(i), self.epoch, False)
        if key.image:
            return self._image(key)
        g, pos = self._anchor(key.index)
        index = int(self._anchor_cum[g]) + pos  # key.index, negative ones counted from the end
        rng = np.random.default_rng([self.seed, key.epoch, 0, index])
        stride = self.strides[int(rng.integers(len(self.strides)))] if len(self.strides) > 1 else self.stride
        length = int(self._seg_len[g])
        while self.span_of(stride) > length:  # shot too short for this stride: largest that fits
            stride = max(s for s in self.strides if s < stride)
        n0, n = length - self.span + 1, length - self.span_of(stride) + 1
        offset = pos if stride == self.stride else round(pos * (n - 1) / max(1, n0 - 1))
        v, start = int(self._seg_video[g]), int(self._seg_start[g]) + offset
        latents = self._read(v, start, self.span_of(stride), stride, rng)  # (C, frames, h, w)
        return dict(latents=latents, text=self._caption(v, rng), fps=self.cache_fps / stride, video=v,
                    start=start, stride=stride, is_image=False)

    def _image(self, key: ClipKey) -> dict[str, Any]:
        j = key.index
        if not 0 <= j < self.num_images:
            raise IndexError(f"image index {j} out of range for {self.num_images} frames")
        g = int(np.searchsorted(self._img_cum, j, side="right")) - 1
        v, t = int(self._img_video[g]), int(self._img_start[g]) + j - int(self._img_cum[g])
        rng = np.random.default_rng([self.seed, key.epoch, 1, j])
        return dict(latents=self._read(v, t, 1, 1, rng), text=self._caption(v, rng), fps=self.cache_fps,
                    video=v, start=t, stride=1, is_image=True)

    def _read(self, v: int, start: int, span: int, stride: int, rng: np.random.Generator) -> torch.Tensor:
        """Frames start, start+stride, ... of video v, cropped/flipped: float32 (C, frames, h, w)."""
        frames = int(self._v_frames[v])
        c, h, w = self._v_shape[0]
        crc = int(self._v_crc[v])
        video = self._reader.array(self._shards[self._v_shard[v]], int(self._v_offset[v]),
                                   frames * c * h * w * 2, (frames, c, h, w),  # memmap view
                                   crc32=crc if crc >= 0 else None, source=self._v_source[v])
        y = x = 0
        ch, cw = h, w
        if self.random_crop is not None:
            ch = cw = self.random_crop
            y, x = int(rng.integers(h - ch + 1)), int(rng.integers(w - cw + 1))
        clip = video[start : start + span : stride, :, y : y + ch, x : x + cw]  # reads only these pages
        if self.flip and rng.random() < 0.5:
            clip = clip[..., ::-1]
        return torch.from_numpy(np.ascontiguousarray(clip, dtype=np.float32)).permute(1, 0, 2, 3).contiguous()

    def _caption(self, v: int, rng: np.random.Generator) -> torch.Tensor:
        lo, hi = int(self._cap_ptr[v]), int(self._cap_ptr[v + 1])
        j = int(self._cap_ids[lo + int(rng.integers(hi - lo))]) if hi - lo > 1 else int(self._cap_ids[lo])
        if self._text is None or self._pid != os.getpid():  # forked worker: open our own handle
            self._text, self._pid = safe_open(str(self.cache_dir / TEXT_FILE), framework="pt"), os.getpid()
        return self._text.get_slice(TEXT_KEY)[j : j + 1][0].float()  # (77, dim)

    def __getstate__(self) -> dict[str, Any]:  # spawn-started workers: reopen files lazily
        return dict(self.__dict__, _text=None)
