"""Option checks shared by the stages: numbers in range, output folders that can be written.

Every stage checks all of its options at its start, before any model is loaded (`TrainConfig.resolved`,
`prepare.check_prepare_options`, `sample.check_sample_options`, `sample.check_interpolate_options`,
`evaluate.check_eval_options`), so the command line and the Python API refuse the same values with the
same one-line ValueError, which names the option, the values it takes and the value given.
Torch-free: the CLI can run these before importing anything heavy.
"""

from __future__ import annotations

import math
import numbers
import os
from pathlib import Path
from typing import Any


def check_int(option: str, value: Any, minimum: int = 1, *, optional: bool = False, hint: str = "") -> None:
    """`value` is an integer of at least `minimum` (or None when `optional`)."""
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{option} must be an integer of at least {minimum}{hint}, got {value!r}")


def check_number(option: str, value: Any, *, above: float | None = None, at_least: float | None = None,
                 below: float | None = None, at_most: float | None = None, optional: bool = False,
                 hint: str = "") -> None:
    """`value` is a finite real number within the given bounds (or None when `optional`).

    above/below: strict bounds; at_least/at_most: inclusive ones. nan and inf are always refused."""
    if value is None and optional:
        return
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = ((above is None or value > above) and (at_least is None or value >= at_least)
              and (below is None or value < below) and (at_most is None or value <= at_most))
    if not ok:
        raise ValueError(f"{option} must be a finite number{_range_text(above, at_least, below, at_most)}{hint}, "
                         f"got {value!r}")


def _range_text(above: float | None, at_least: float | None, below: float | None, at_most: float | None) -> str:
    low = "" if above is None and at_least is None else ("[" if at_least is not None else "(")
    high = "" if below is None and at_most is None else ("]" if at_most is not None else ")")
    lo = at_least if at_least is not None else above
    hi = at_most if at_most is not None else below
    if low and high:
        return f" in {low}{lo:g}, {hi:g}{high}"
    if low:
        return f" {'of at least' if at_least is not None else 'above'} {lo:g}"
    if high:
        return f" {'of at most' if at_most is not None else 'below'} {hi:g}"
    return ""


def check_out_folder(path: str | Path, option: str = "--out") -> None:
    """`path` is (or can be made) a folder this process can write into: neither it nor a parent is a file,
    and the nearest existing folder is writable. Raises a one-line ValueError naming the option."""
    _check_writable(Path(path).expanduser(), option, str(path))


def check_out_file(path: str | Path, option: str = "--out") -> None:
    """`path` is a file to write: it is not a folder, and its folder is (or can be made) a writable folder."""
    p = Path(path).expanduser()
    if p.is_dir():
        raise ValueError(f"{option} {path} is a folder; pass a file name")
    _check_writable(p.parent, option, str(path))


def _check_writable(folder: Path, option: str, given: str) -> None:
    """Walk up from `folder` to the first path that exists: it must be a writable folder."""
    for where in (folder, *folder.parents):
        if where.is_dir():
            if not os.access(where, os.W_OK | os.X_OK):
                raise ValueError(f"{option} {given}: permission denied: cannot write in {where} (read-only or "
                                 "not yours); choose a folder you can write to")
            return
        if where.is_symlink() and not where.exists():  # a link to nothing, or to itself
            raise ValueError(f"{option} {given}: {where} is a broken symbolic link; remove it or pass another path")
        if where.exists():
            what = f"{option} {given} is a file" if where == Path(given).expanduser() \
                else f"{option} {given}: {where} is a file, not a folder"
            raise ValueError(f"{what}; pass a folder (new or existing) instead")
