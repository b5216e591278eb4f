"""What to prepare: video files, folders, globs and manifests -> `VideoJob`s with their captions.

Inputs (in order; the same file + time window given twice is one job with the captions merged):
  - a video file; a missing or unreadable one becomes a job too and is reported when decoded (a
    symbolic link loop is refused at once);
  - a folder: every file below it with a video extension (mp4 mov mkv webm avi gif), sorted;
  - a glob (`clips/**/*.mp4`, quoted so the shell leaves it alone), when no such path exists;
  - a manifest, a `.csv` (header row) or `.jsonl` file with `path`, `caption`, optional `start` and
    `end` (seconds). Relative paths resolve against the manifest's folder. Several captions for one
    video: repeat the row (same path/start/end), or in JSONL give "caption" as a list of strings.
    A row whose times are not finite seconds >= 0 is skipped with a warning; a JSONL caption that
    is neither text nor a list of texts stops `prepare` with a one-line error naming the line.

Captions of a job, first that applies: the manifest's; the sidecar `<stem>.txt` / `<name>.txt`
next to the video (UTF-8, one caption per non-empty line); the `default` (`--caption`). A sidecar
that is not UTF-8 is ignored with a warning naming it (the video keeps going with `default`).
One caption per sample is picked at training time (`ClipDataset`).
"""

from __future__ import annotations

import csv
import errno
import glob
import hashlib
import json
import math
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv", ".webm", ".avi", ".gif")
MANIFEST_EXTENSIONS = (".csv", ".jsonl")
Warn = Callable[[str], None]


@dataclass
class VideoJob:
    path: Path  # absolute
    start: float | None = None  # seconds (manifest window), None: from the beginning
    end: float | None = None  # seconds, None: to the end
    captions: list[str] = field(default_factory=list)

    @property
    def key(self) -> str:
        """Identity in the cache: the path plus the window (one file may give several clips)."""
        if self.start is None and self.end is None:
            return str(self.path)
        return f"{self.path}#{_num(self.start)}-{_num(self.end)}"

    @property
    def label(self) -> str:
        """How warnings and the summary name the job."""
        return self.key if self.start is None and self.end is None else \
            f"{self.path} [{_num(self.start) or 0}s-{_num(self.end) or 'end'}]"

    @property
    def name(self) -> str:
        """Readable unique name: file stem (safe characters) + 8 hex digits of the key."""
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", self.path.stem)[:60] or "video"
        return f"{stem}-{hashlib.sha1(self.key.encode()).hexdigest()[:8]}"


def _num(x: float | None) -> str:
    return "" if x is None else f"{x:g}"


def _is_glob(text: str) -> bool:
    return any(c in text for c in "*?[")


def read_sidecar(video: Path, warn: Warn) -> list[str] | None:
    """Captions from `<stem>.txt` or `<name>.txt` next to `video`; None when there is none (or it is
    not UTF-8, which is warned about)."""
    for side in (video.with_suffix(".txt"), video.with_name(video.name + ".txt")):
        if side.is_file():
            try:
                text = side.read_text(encoding="utf-8")
            except UnicodeDecodeError as e:
                warn(f"warning: {side}: caption file is not UTF-8 text (byte {e.object[e.start]:#04x} at "
                     f"offset {e.start}); ignoring it, {video.name} gets the --caption text; "
                     "re-save it as UTF-8")
                return None
            except OSError as e:
                warn(f"warning: {side}: cannot read caption file ({e.strerror}); ignoring it")
                return None
            return [ln.strip() for ln in text.splitlines() if ln.strip()] or [""]
    return None


def _read_manifest(path: Path) -> list[dict[str, Any]]:
    """Rows of a CSV/JSONL manifest as dicts (path, caption, start, end); one-line errors."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise ValueError(f"{path}: manifest is not UTF-8 text; re-save it as UTF-8") from None
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(text.splitlines())
        if not reader.fieldnames or "path" not in [f.strip().lower() for f in reader.fieldnames]:
            raise ValueError(f"{path}: manifest CSV needs a header row with a `path` column "
                             f"(found {reader.fieldnames}); add `path,caption,start,end`")
        return [{(k or "").strip().lower(): v for k, v in row.items()} | {"_line": i + 2}
                for i, row in enumerate(reader)]
    rows = []
    for i, line in enumerate(text.splitlines()):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{i + 1}: not a JSON object ({e.msg}); one object per line") from None
        if not isinstance(row, dict):
            raise ValueError(f"{path}:{i + 1}: not a JSON object; one object per line")
        caption = row.get("caption")
        if not (caption is None or isinstance(caption, str)
                or (isinstance(caption, list) and all(isinstance(c, str) for c in caption))):
            raise ValueError(f"{path}:{i + 1}: \"caption\" must be a string or a list of strings, got "
                             f"{json.dumps(caption)}; write it in quotes, e.g. \"caption\": \"{caption}\"")
        rows.append(row | {"_line": i + 1})
    return rows


def _seconds(value: Any) -> float | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        x = math.nan
    if not math.isfinite(x) or x < 0:
        raise ValueError(f"{value!r} is not a finite time in seconds >= 0; leave it empty for the whole video")
    return x


def _symlink_loop(path: Path) -> bool:
    """True when following `path` never reaches a file (a link to itself, or a cycle of links)."""
    try:
        os.stat(path)
    except OSError as e:
        return e.errno == errno.ELOOP
    return False


def _loop_message(path: Path) -> str:
    return f"{path}: symbolic link loop (the link points back to itself); point it at a video or pass the video itself"


def check_inputs(inputs: Sequence[str | Path]) -> None:
    """What `collect_jobs` refuses, checked without decoding anything: a given path that is a symbolic link
    loop, and a manifest that cannot be read (not UTF-8, no `path` column, a line that is not a JSON object,
    a caption that is not text). One-line ValueErrors naming the file."""
    for item in inputs:
        p = Path(item).expanduser()
        if _symlink_loop(p):
            raise ValueError(_loop_message(p))
        if p.is_file() and p.suffix.lower() in MANIFEST_EXTENSIONS:
            _read_manifest(p)


def _manifest_jobs(path: Path, warn: Warn) -> list[tuple[VideoJob, list[str] | None]]:
    jobs = []
    for row in _read_manifest(path):
        where = f"{path}:{row['_line']}"
        src = str(row.get("path") or "").strip()
        try:
            if not src:
                raise ValueError("no path")
            start, end = _seconds(row.get("start")), _seconds(row.get("end"))
            if start is not None and end is not None and end <= start:
                raise ValueError(f"end {end:g} s is not after start {start:g} s")
            video = Path(src).expanduser()
            video = path.parent / video if not video.is_absolute() else video
            if _symlink_loop(video):
                raise ValueError(_loop_message(video))
        except ValueError as e:
            warn(f"warning: {where}: skipping manifest row ({e})")
            continue
        caps = row.get("caption")
        caps = [caps] if isinstance(caps, str) else [str(c) for c in caps or []]
        caps = [c.strip() for c in caps if c and c.strip()]
        jobs.append((VideoJob(video.resolve(), start, end), caps or None))
    return jobs


def collect_jobs(inputs: Sequence[str | Path], default_caption: str = "",
                 warn: Warn = print) -> list[VideoJob]:
    """Every job named by `inputs`, in order, deduplicated, with captions resolved (see the module)."""
    found: list[tuple[VideoJob, list[str] | None]] = []
    for item in inputs:
        p = Path(item).expanduser()
        if p.is_file() and p.suffix.lower() in MANIFEST_EXTENSIONS:
            found += _manifest_jobs(p, warn)
        elif p.is_dir():
            found += [(VideoJob(f.resolve()), None) for f in sorted(p.rglob("*"))
                      if f.is_file() and f.suffix.lower() in VIDEO_EXTENSIONS]
        elif not p.exists() and not p.is_symlink() and _is_glob(str(item)):
            matches = [Path(m) for m in sorted(glob.glob(str(p), recursive=True))]
            files = [m for m in matches if m.is_file()]
            if not files:
                warn(f"warning: no file matches {item}; check the pattern")
            found += [(VideoJob(m.resolve()), None) for m in files]
        elif _symlink_loop(p):
            raise ValueError(_loop_message(p))
        else:
            found.append((VideoJob(p.resolve()), None))  # missing/odd files are reported when decoded
    jobs: dict[str, VideoJob] = {}
    given: dict[str, list[str]] = {}  # manifest captions per job, merged over repeated rows
    for job, caps in found:
        jobs.setdefault(job.key, job)
        merged = given.setdefault(job.key, [])
        merged += [c for c in caps or [] if c not in merged]
    sidecars: dict[Path, list[str] | None] = {}
    for key, job in jobs.items():
        if not given[key] and job.path not in sidecars:
            sidecars[job.path] = read_sidecar(job.path, warn)
        job.captions = given[key] or sidecars.get(job.path) or [default_caption.strip()]
    return list(jobs.values())
