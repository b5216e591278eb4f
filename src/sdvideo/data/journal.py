"""The video journal: `CACHE/videos.jsonl`, one JSON object per line, appended and fsynced per video.

A line is written only after the video's latents are durable in their shard (`shards.py`), so the
journal is the commit record of the cache: a video is in the cache exactly when its line is. Each
line has a "key" (source path + time window); a later line for the same key replaces the earlier
one (used to update captions, or to turn an old "skipped" record into a video). A run killed while
writing a line leaves a partial last line: readers ignore it and `Journal` cuts it off before
appending. `compact` rewrites the file with one line per key (atomically) at the end of a run.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

JOURNAL_FILE = "videos.jsonl"


def read_journal(path: str | Path) -> tuple[dict[str, dict[str, Any]], int]:
    """(key -> latest record, in order of first appearance; byte length of the valid prefix)."""
    path = Path(path)
    records: dict[str, dict[str, Any]] = {}
    if not path.is_file():
        return records, 0
    data = path.read_bytes()
    valid = 0
    for line in data.splitlines(keepends=True):
        if not line.endswith(b"\n"):
            break  # a line cut off by a kill: not committed
        try:
            record = json.loads(line)
            key = record["key"]
        except (ValueError, KeyError, TypeError):
            break  # garbage after a crash on a file system that does not order writes
        records[key] = record  # an existing key keeps its position, takes the new content
        valid += len(line)
    return records, valid


class Journal:
    """Append-only writer; opening cuts the file to its valid prefix."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.records, valid = read_journal(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        os.ftruncate(self.fd, valid)
        self.pos = valid

    def append(self, record: dict[str, Any]) -> None:
        """Write one record durably (fsync) and update `records`."""
        line = (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")
        view = memoryview(line)
        while view:
            n = os.pwrite(self.fd, view, self.pos)
            self.pos += n
            view = view[n:]
        os.fsync(self.fd)
        self.records[record["key"]] = record

    def compact(self) -> None:
        """Rewrite with one line per key (tmp file, fsync, rename): the file stops growing across runs."""
        from sdvideo.atomic_files import atomic_path

        os.close(self.fd)
        with atomic_path(self.path) as tmp:
            with open(tmp, "wb") as f:
                for record in self.records.values():
                    f.write((json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode())
        self.fd = os.open(self.path, os.O_RDWR)
        self.pos = os.fstat(self.fd).st_size

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
