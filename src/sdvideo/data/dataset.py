"""`ClipDataset`: fixed-length latent clips (and a caption embedding) read from a latent cache.

Latent files are opened lazily with `safetensors.safe_open` (memory-mapped; only the requested
frames are read) and the handles are kept per process, so DataLoader workers each open their own.
"""

from __future__ import annotations

import bisect
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from torch.utils.data import Dataset

from sdvideo.data.cache import (
    LATENTS_KEY,
    TEXT_FILE,
    TEXT_KEY,
    empty_text_embedding,
    latents_file,
    load_cache_info,
)

__all__ = ["ClipDataset", "empty_text_embedding", "load_cache_info"]


class ClipDataset(Dataset):
    """Every clip of `frames` latent frames taken `stride` apart, from every cached video.

    Clip (video v, start s) exists when s + (frames - 1) * stride < T_v. Item i is a dict:
      latents: float32 (C, frames, h, w)
      text:    float32 (77, dim), one of the video's captions (chosen by i when several)
      fps:     float, cache fps / stride (the rate of the clip)
      video:   int, index of the video in cache.json "videos"
    """

    def __init__(self, cache_dir: str | Path, frames: int = 5, stride: int = 1) -> None:
        if frames < 1 or stride < 1:
            raise ValueError(f"frames and stride must be >= 1, got frames={frames}, stride={stride}")
        self.cache_dir = Path(cache_dir)
        self.info = load_cache_info(self.cache_dir)
        self.frames, self.stride = frames, stride
        self.span = (frames - 1) * stride + 1  # source frames one clip covers
        self.videos: list[dict[str, Any]] = self.info["videos"]
        self.fps = float(self.info["fps"]) / stride
        counts = [max(0, int(v["frames"]) - self.span + 1) for v in self.videos]
        self._starts = [0]  # _starts[v] = index of video v's first clip
        for c in counts:
            self._starts.append(self._starts[-1] + c)
        if self._starts[-1] == 0:
            longest = max((int(v["frames"]) for v in self.videos), default=0)
            raise ValueError(
                f"cache {self.cache_dir} has no video long enough for clips of {frames} frames "
                f"with stride {stride} ({self.span} frames needed, longest has {longest}); "
                "use fewer --frames, a smaller stride or longer videos")
        self._handles: dict[str, Any] = {}
        self._pid = os.getpid()

    def __len__(self) -> int:
        return self._starts[-1]

    def locate(self, i: int) -> tuple[int, int]:
        """Clip i -> (video index, start frame)."""
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(f"clip index {i} out of range for {len(self)} clips")
        v = bisect.bisect_right(self._starts, i) - 1
        return v, i - self._starts[v]

    def _open(self, path: Path) -> Any:
        if self._pid != os.getpid():  # forked DataLoader worker: never share file handles
            self._handles, self._pid = {}, os.getpid()
        key = str(path)
        if key not in self._handles:
            self._handles[key] = safe_open(key, framework="pt")
        return self._handles[key]

    def __getitem__(self, i: int) -> dict[str, Any]:
        v, s = self.locate(i)
        video = self.videos[v]
        rows = self._open(latents_file(self.cache_dir, video)).get_slice(LATENTS_KEY)
        clip = rows[s : s + self.span][:: self.stride]  # (frames, C, h, w) float16
        latents = clip.float().permute(1, 0, 2, 3).contiguous()  # (C, frames, h, w)
        caps = video.get("captions") or [0]
        j = caps[i % len(caps)]
        text = self._open(self.cache_dir / TEXT_FILE).get_slice(TEXT_KEY)[j : j + 1][0].float()
        return dict(latents=latents, text=text, fps=self.fps, video=v)

    def __getstate__(self) -> dict[str, Any]:  # spawn-started workers: reopen files lazily
        state = self.__dict__.copy()
        state["_handles"] = {}
        return state
