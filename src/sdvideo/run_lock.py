"""One writer per output folder: `sdvideo prepare` and `sdvideo train` hold an flock on `<folder>/.lock`.

The lock is taken on an open file (fcntl.flock), so the OS releases it when the process ends, killed
or not: a leftover `.lock` file of a dead run never blocks the next one. The holder writes its pid
and command into the file, so that a refused run can say who holds the folder.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

LOCK_FILE = ".lock"


@contextlib.contextmanager
def exclusive(folder: str | Path, command: str) -> Iterator[None]:
    """Hold `folder/.lock` for the block (the folder is created if missing); while another process holds
    it, raise a one-line ValueError at once naming the folder, the holder's command and pid.

    command: what the holder runs, e.g. "sdvideo train" (written into the lock file for that message).
    Not POSIX (no fcntl): no lock.
    """
    folder = Path(folder)
    try:
        import fcntl
    except ImportError:
        yield
        return
    folder.mkdir(parents=True, exist_ok=True)
    # "a+": opening must not truncate the file, whose pid belongs to the holder until we hold the lock.
    with open(folder / LOCK_FILE, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder, pid = _holder(f)
            raise ValueError(
                f"{folder} is being written by another `{holder or command}`{f' (pid {pid})' if pid else ''}; "
                "wait for it to finish or choose another --out"
            ) from None
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()} {command}\n")
        f.flush()
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _holder(f) -> tuple[str, str]:
    """(command, pid) written by the lock's holder; empty strings where it has not written them (yet)."""
    f.seek(0)
    pid, _, command = f.read().strip().partition(" ")
    return (command, pid) if pid.isdigit() else ("", "")
