"""Files and folders that appear whole or not at all: write to `<name>.tmp`, then rename over the target.

A process killed mid-write leaves the previous file (or none), never a truncated one: the cache,
its journal, sample videos and grids, checkpoints, saved models, plots and reports are all written
this way.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def fsync_dir(path: Path) -> None:
    """Make a file creation/rename in `path` durable (POSIX; a no-op where directories can't be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | Path, durable: bool = True) -> Iterator[Path]:
    """Yield `<path>.tmp` to write to; on success it is renamed over `path` (fsynced first when `durable`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        yield tmp
        if durable:
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
        if durable:
            fsync_dir(path.parent)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_dir(path: str | Path, durable: bool = False) -> Iterator[Path]:
    """Yield an empty `<path>.tmp/` to fill; on success it replaces the folder `path` (its files fsynced before
    the rename when `durable`).

    The old folder is renamed aside to `<path>.old`, the new one renamed in, then the aside copy deleted:
    at every moment one of `path` and `<path>.old` holds a whole folder. A failure between the renames puts
    the old one back; a kill between them is repaired by the next call on `path`, which restores
    `<path>.old` first. A leftover `.tmp` of a killed run is cleared."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    aside = path.with_name(path.name + ".old")
    _restore_aside(path, aside)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        yield tmp
        if durable:
            for f in tmp.rglob("*"):
                if f.is_file():
                    with open(f, "rb") as fh:
                        os.fsync(fh.fileno())
        if path.exists():
            os.replace(path, aside)
        os.replace(tmp, path)
        if durable:
            fsync_dir(path.parent)
        shutil.rmtree(aside, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        _restore_aside(path, aside)


def _restore_aside(path: Path, aside: Path) -> None:
    """`atomic_dir`'s repair: `aside` back to `path` where `path` is missing (the new folder never came in),
    else `aside` deleted (the new folder came in; the old copy is no longer needed)."""
    if not aside.exists():
        return
    if path.exists():
        shutil.rmtree(aside, ignore_errors=True)
    else:
        os.replace(aside, path)


def save_figure(fig: Any, path: str | Path) -> Path:
    """A matplotlib figure written atomically (format from the file's suffix), then closed."""
    import matplotlib.pyplot as plt

    path = Path(path)
    with atomic_path(path, durable=False) as tmp:
        fig.savefig(tmp, format=path.suffix.lstrip(".") or "png")
    plt.close(fig)
    return path
