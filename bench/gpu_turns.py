"""Several benchmark processes sharing one GPU: they compile side by side, then time one at a time.

Compiling SD's regions takes minutes of CPU per variant and a GPU call is limited to ten, so the
variants of one call run as parallel processes. None times anything before every process has
compiled (a barrier), timed sections hold an exclusive file lock, and after its first turn a process
runs all its GPU work (a later case's compilation too) in turns, so no measurement overlaps another's
kernels or compilation. What parallel compilation cannot avoid: each process autotunes (cuDNN, inductor)
while the others compile, so runs 15-16 timed the same step 4 % apart; final figures come from one
process timing variants one after another.

    turns = GpuTurns("/tmp/turns", processes=3)
    warm_up()                  # compile, outside any turn
    with turns():              # waits for all 3 processes once, then for the lock
        measure()
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from pathlib import Path
from typing import Iterator


class GpuTurns:
    def __init__(self, directory: str | None, processes: int = 1, wait_s: float = 900.0) -> None:
        self.directory = Path(directory) if directory else None
        self.processes, self.wait_s = processes, wait_s
        self.passed_barrier = self.directory is None or processes <= 1
        if self.directory:
            self.directory.mkdir(parents=True, exist_ok=True)

    def arrive(self) -> None:
        """Count this process as compiled (also call it on the way out, so a failed run frees the others)."""
        if self.directory:
            (self.directory / f"ready-{os.getpid()}").touch()

    def _barrier(self) -> None:
        self.arrive()
        deadline = time.monotonic() + self.wait_s
        while len(list(self.directory.glob("ready-*"))) < self.processes and time.monotonic() < deadline:
            time.sleep(1.0)
        self.passed_barrier = True

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        if self.directory is None:
            yield
            return
        if not self.passed_barrier:
            self._barrier()
        with open(self.directory / "lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


def add_turns_arguments(parser) -> None:
    """--turns and --processes, as every benchmark script that times in turns takes them."""
    parser.add_argument("--turns", default=None, help="a folder shared with --processes parallel runs of "
                        "benchmark scripts on the same GPU: all compile, then each times in turn (gpu_turns.py)")
    parser.add_argument("--processes", type=int, default=1)


def run_in_turns(run, args) -> None:
    """`run(args, turns)` with the GpuTurns its --turns/--processes name; a run that fails before its first
    measurement still counts as arrived, so it does not hold the others at the barrier."""
    turns = GpuTurns(args.turns, args.processes)
    try:
        run(args, turns)
    finally:
        turns.arrive()
