"""`sdvideo export RUN --format FORMAT --out FILE`: a training run's weights as one file to share.

Formats (`choices.EXPORT_FORMATS`), one module each, holding its writer and its reader:

    temporal   sdvideo's own temporal layers (and fps embedding, and masked-frame conditioning) alone, with
               their config, the run's sampling defaults and its base's identity: `temporal.py`. Sampled
               with `sdvideo sample --run FILE --base BASE` (`VideoPipeline.from_temporal_file`).

A format is added by writing `export/<name>.py` with `export(run, out, dtype) -> ExportResult`, naming it in
`EXPORTERS` below and in `choices.EXPORT_FORMATS` (the CLI's choices; torch-free). Torch-free at import.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

from ..choices import EXPORT_DTYPES, EXPORT_FORMATS

# format -> "module:function" (imported when used: the modules load torch)
EXPORTERS = {"temporal": "sdvideo.export.temporal:export"}


@dataclass
class ExportResult:
    path: Path        # the file written
    tensors: int      # tensors in it
    parameters: int   # numbers in them
    bytes: int        # the file's size
    dtype: str        # "fp16", "bf16" or "fp32"

    def line(self) -> str:
        return (f"{self.path}: {self.tensors} tensors, {self.parameters / 1e6:.2f} M parameters, "
                f"{self.bytes / 1e6:.1f} MB ({self.dtype})")


def export_run(run: str | Path, out: str | Path, format: str = "temporal", dtype: str = "fp16") -> ExportResult:
    """Write `run`'s weights in `format` to `out` (atomically; on any refusal nothing is written)."""
    if format not in EXPORT_FORMATS or format not in EXPORTERS:
        raise ValueError(f"--format must be one of {', '.join(EXPORT_FORMATS)}, got {format!r}")
    if dtype not in EXPORT_DTYPES:
        raise ValueError(f"--dtype must be one of {', '.join(EXPORT_DTYPES)}, got {dtype!r}")
    module, _, function = EXPORTERS[format].partition(":")
    return getattr(importlib.import_module(module), function)(run, out, dtype=dtype)
