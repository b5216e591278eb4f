"""`sdvideo export RUN --format FORMAT --out FILE`: a training run's weights as one file to share.

Formats (`choices.EXPORT_FORMATS`), one module each, holding its writer and its reader:

    temporal   sdvideo's own temporal layers (and fps embedding, and masked-frame conditioning) alone, with
               their config, the run's sampling defaults and its base's identity: `temporal.py`. Sampled
               with `sdvideo sample --run FILE --base BASE` (`VideoPipeline.from_temporal_file`).
    animatediff the motion modules of a `--temporal-layers animatediff` run as an AnimateDiff motion module
               (original key layout) for ComfyUI, A1111, AnimateDiff and diffusers: `animatediff.py`.
    lora       the LoRA adapters of a `--lora-rank` run on AnimateDiff motion modules as a MotionLoRA that
               diffusers' `AnimateDiffPipeline.load_lora_weights` takes: `motion_lora.py`.

Without `out`, the file is written beside the run folder: `<run's name>-<format>.safetensors`.

A format is added by writing `export/<name>.py` with `export(run, out, dtype) -> ExportResult`, naming it in
`EXPORTERS` below and in `choices.EXPORT_FORMATS` (the CLI's choices; torch-free). Torch-free at import.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

from ..choices import EXPORT_DTYPES, EXPORT_FORMATS

# format -> "module:function" (imported when used: the modules load torch)
EXPORTERS = {"temporal": "sdvideo.export.temporal:export",
             "animatediff": "sdvideo.export.animatediff:export",
             "lora": "sdvideo.export.motion_lora:export"}


@dataclass
class ExportResult:
    path: Path        # the file written
    tensors: int      # tensors in it
    parameters: int   # numbers in them
    bytes: int        # the file's size
    dtype: str        # "fp16", "bf16" or "fp32"
    use: str = ""     # how to use the file, for the CLI's line (empty: `sdvideo sample --run FILE --base BASE`)

    def line(self) -> str:
        return (f"{self.path}: {self.tensors} tensors, {self.parameters / 1e6:.2f} M parameters, "
                f"{self.bytes / 1e6:.1f} MB ({self.dtype})")


def read_run_config(run: Path) -> dict:
    """The config.json of the training run `run` (a run folder or RUN/best); a one-line error for anything else."""
    import json

    if run.is_file() or not (run / "config.json").is_file():
        raise FileNotFoundError(f"{run}: not a training run (no config.json); pass the --out folder of "
                                "`sdvideo train` (or RUN/best)")
    if (run / "model_index.json").is_file():
        raise ValueError(f"{run} is a saved pipeline, not a training run; export the run it was saved from")
    return json.loads((run / "config.json").read_text())


def default_out(run: str | Path, format: str) -> Path:
    """Where `export_run` writes without `out`: `<run's name>-<format>.safetensors` beside the run folder
    (RUN/best: RUN/best-<format>.safetensors)."""
    run = Path(run).expanduser()
    name = run.name or run.resolve().name
    return (run.parent if run.name else run.resolve().parent) / f"{name}-{format}.safetensors"


def export_run(run: str | Path, out: str | Path | None = None, format: str = "temporal",
               dtype: str = "fp16") -> ExportResult:
    """Write `run`'s weights in `format` to `out` (default `default_out`; atomically; on any refusal nothing is
    written)."""
    if format not in EXPORT_FORMATS or format not in EXPORTERS:
        raise ValueError(f"--format must be one of {', '.join(EXPORT_FORMATS)}, got {format!r}")
    if dtype not in EXPORT_DTYPES:
        raise ValueError(f"--dtype must be one of {', '.join(EXPORT_DTYPES)}, got {dtype!r}")
    module, _, function = EXPORTERS[format].partition(":")
    out = default_out(run, format) if out is None else out
    return getattr(importlib.import_module(module), function)(run, out, dtype=dtype)
