"""Latent shards: raw float16 files that videos' latents are appended to, read back memory-mapped.

    CACHE/latents/shard-00000.bin   video A's latents (T_A, C, h, w) float16, then video B's, ...

A video's bytes are written at the shard's committed end, then `commit()` fsyncs the shard and
returns where they lie (shard, byte offset, byte count, crc32). Only then does `prepare` record the
video in the journal (`journal.py`), so every byte range the cache lists was on disk before it was
listed. Bytes past the last listed video (a run killed mid-video) are cut off by `ShardWriter` when
the next run opens the cache; shard files no entry lists are deleted. A reader therefore never sees
a byte range that reads back wrong, and a rerun never redoes a listed video.

A video never spans two shards; a new shard starts when the current one holds >= `shard_bytes`.
Readers map whole shard files with `numpy.memmap` (pages come from the OS page cache on demand, so
RAM use does not grow with the dataset) and slice one video's frames out of the map.

Bytes damaged after the commit (a disk error, a file overwritten) are caught on reading: the first
time a process reads a video, its whole byte range is checked against the crc32 in the journal
(`ShardReader.array` with `crc32=`). The check is per video, not per shard: a GB shard is never
summed at once, a clip's first read pays one pass over its video's bytes (about a second per GB,
which pulls into the page cache the pages the clips read next), and later reads of the video cost
nothing.
"""

from __future__ import annotations

import os
import re
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from sdvideo.atomic_files import fsync_dir
from sdvideo.data.journal import JOURNAL_FILE

LATENTS_DIR = "latents"
_SHARD_RE = re.compile(r"^shard-(\d{5,})\.bin$")


def shard_name(i: int) -> str:
    return f"{LATENTS_DIR}/shard-{i:05d}.bin"


class ShardWriter:
    """Append videos' latents to shards. `committed` maps shard file (relative to the cache) to the
    bytes that listed videos use; opening truncates every shard to that length and deletes the rest."""

    def __init__(self, cache_dir: str | Path, committed: dict[str, int], shard_bytes: int = 1 << 30) -> None:
        self.root = Path(cache_dir)
        self.shard_bytes = max(1, int(shard_bytes))
        (self.root / LATENTS_DIR).mkdir(parents=True, exist_ok=True)
        self.sizes = dict(committed)
        for f in sorted((self.root / LATENTS_DIR).iterdir()):
            rel = f"{LATENTS_DIR}/{f.name}"
            if rel not in self.sizes:  # never listed: from a run killed before its first commit
                f.unlink()
            elif f.stat().st_size != self.sizes[rel]:  # bytes of a video that was never committed
                os.truncate(f, self.sizes[rel])
        missing = [s for s in self.sizes if not (self.root / s).is_file()]
        if missing:
            raise ValueError(f"{self.root}: shard {missing[0]} listed in the index is missing; "
                             "the cache was damaged, rerun prepare with --overwrite")
        numbers = [int(m.group(1)) for s in self.sizes if (m := _SHARD_RE.match(Path(s).name))]
        self.next_number = max(numbers, default=-1) + 1
        newest = shard_name(self.next_number - 1)
        self.current: str | None = newest if newest in self.sizes else None  # appended to next
        self.fd: int | None = None
        self.start = self.pos = 0
        self.crc = 0
        self.frames = 0

    def begin(self) -> None:
        """Start a video: continue the newest shard, or open a new one when it is full."""
        if self.current is None or self.sizes[self.current] >= self.shard_bytes:
            self._close_fd()
            self.current = shard_name(self.next_number)
            self.next_number += 1
            self.sizes[self.current] = 0
        if self.fd is None:
            path = self.root / self.current
            new = not path.exists()
            self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            if new:
                fsync_dir(path.parent)
        self.start = self.pos = self.sizes[self.current]
        os.ftruncate(self.fd, self.start)  # drop what an earlier rolled-back video left
        self.crc, self.frames = 0, 0

    def write(self, latents: np.ndarray) -> None:
        """Append float16 (n, C, h, w) latents of the current video."""
        data = np.ascontiguousarray(latents, dtype=np.float16).tobytes()
        view = memoryview(data)
        while view:  # os.pwrite may write less than asked
            n = os.pwrite(self.fd, view, self.pos)
            self.pos += n
            view = view[n:]
        self.crc = zlib.crc32(data, self.crc)
        self.frames += int(latents.shape[0])

    def commit(self) -> dict[str, Any]:
        """Make the current video's bytes durable; returns its location for the index."""
        os.fsync(self.fd)
        self.sizes[self.current] = self.pos
        return dict(shard=self.current, offset=self.start, nbytes=self.pos - self.start, crc32=self.crc)

    def rollback(self) -> None:
        """Forget the current video (a decode error); its bytes are overwritten by the next one."""
        if self.fd is not None and self.current is not None:
            os.ftruncate(self.fd, self.sizes[self.current])
        self.pos = self.start

    def _close_fd(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def close(self) -> None:
        self._close_fd()


class ShardReader:
    """Memory-mapped access to cached videos. Maps are opened lazily and per process (a forked
    DataLoader worker opens its own; pickling drops them)."""

    def __init__(self, cache_dir: str | Path) -> None:
        self.root = Path(cache_dir)
        self._maps: dict[str, np.memmap] = {}
        self._pid = os.getpid()
        # (shard, offset) of byte ranges whose crc32 matched; kept across a fork (the same bytes) and shared
        # by read-ahead threads (two threads may check one video at once: the same answer, twice the work)
        self._verified: set[tuple[str, int]] = set()

    def video(self, entry: dict[str, Any]) -> np.ndarray:
        """A cached video's latents: read-only float16 (T, C, h, w) view into its shard's map, its bytes
        checked against the entry's crc32 on the first read."""
        return self.array(entry["shard"], int(entry["offset"]), int(entry["nbytes"]), entry["shape"],
                          crc32=entry.get("crc32"), source=entry.get("source"))

    def array(self, shard: str, offset: int, nbytes: int, shape: Any, crc32: int | None = None,
              source: str | None = None) -> np.ndarray:
        """float16 view of `nbytes` bytes at byte `offset` of `shard`, reshaped to `shape`. With `crc32` (the
        journal's, for exactly these bytes: a whole video) the bytes are checked the first time this reader
        reads them; a mismatch raises a one-line ValueError naming the shard file (`source`: the video)."""
        if self._pid != os.getpid():
            self._maps, self._pid = {}, os.getpid()
        start, n = offset // 2, nbytes // 2
        mm = self._maps.get(shard)
        if mm is None or mm.shape[0] < start + n:  # not open yet, or grown since (prepare running)
            path = self.root / shard
            if not path.is_file():
                raise FileNotFoundError(f"{path} is missing; rerun prepare for this cache")
            mm = self._maps[shard] = np.memmap(path, dtype=np.float16, mode="r")
            if mm.shape[0] < start + n:
                raise ValueError(f"{path} is shorter than its index says; rerun prepare for this cache")
        view = mm[start : start + n]
        if crc32 is not None and (shard, offset) not in self._verified:
            crc = zlib.crc32(view)
            if crc != int(crc32):
                raise ValueError(
                    f"{self.root / shard}: bytes {offset}..{offset + nbytes}"
                    + (f" (video {source})" if source else "")
                    + f" fail their crc32 check ({crc:08x}, the index says {int(crc32):08x}): the cache is damaged; "
                    "rerun `sdvideo prepare` into it with --overwrite, or delete the video's line from "
                    f"{self.root / JOURNAL_FILE} and rerun prepare to encode it again")
            self._verified.add((shard, offset))
        return view.reshape(tuple(shape))

    def __getstate__(self) -> dict[str, Any]:
        return dict(self.__dict__, _maps={})


def verify_entry(reader: ShardReader, entry: dict[str, Any]) -> str | None:
    """None when a video's bytes match the crc32 recorded at commit, else a one-line reason."""
    data = np.ascontiguousarray(reader.array(entry["shard"], int(entry["offset"]), int(entry["nbytes"]),
                                             entry["shape"])).tobytes()
    crc = zlib.crc32(data)
    if crc != entry["crc32"]:
        return f"{entry['shard']} bytes {entry['offset']}..: crc32 {crc:08x}, index says {entry['crc32']:08x}"
    return None
