"""The `animatediff` export format: a run's motion modules as an AnimateDiff motion module file.

    sdvideo train ... --temporal-layers animatediff --init-motion mm_sd_v15_v2.ckpt --no-fps-conditioning
    sdvideo export runs/drive --format animatediff --out drive-mm.safetensors

One safetensors file in the original AnimateDiff key layout (as `mm_sd_v15_v2.ckpt` holds it), the one
ComfyUI, A1111 and AnimateDiff's own scripts load, and diffusers' `MotionAdapter.from_single_file` converts:

    down_blocks.0.motion_modules.0.temporal_transformer.transformer_blocks.0.attention_blocks.0.to_q.weight
    down_blocks.0.motion_modules.0.temporal_transformer.transformer_blocks.0.attention_blocks.0.pos_encoder.pe
    mid_block.motion_modules.0.temporal_transformer.proj_out.bias  ...

(`motion_module_file.to_original_names`). The weights are those `sample --run RUN` uses (RUN/unet/: the EMA
weights when EMA was on; a LoRA run's adapters merged), in `--dtype` (fp16 by default, as AnimateDiff's
releases). The header holds, beside them, `format` ("animatediff-motion-module"), the diffusers `MotionAdapter`
config the modules fit (`motion_adapter_config`, JSON: pass it as `config=` to `MotionAdapter.from_single_file`
when offline), the base's name and the sdvideo version; tools that do not know them ignore them.

Only what a motion module can hold is written, so some runs are refused (one line, nothing written):

- runs with sdvideo's own temporal layers (`--temporal-layers pseudo3d`, the default): no AnimateDiff form;
  `--format temporal` writes them;
- runs trained with `--task` (masked-frame conditioning adds input channels to the UNet's first convolution)
  or with `--train` beyond the temporal layers (changed image weights): a motion module holds neither;
- runs with a learned fps embedding (`--fps-conditioning`, on by default): AnimateDiff has no fps input, and
  the embedding shifts every block's time embedding, which no motion-module weight can stand in for. An fps
  embedding still at its zero start (its output layer all zero: it adds nothing) is dropped. Train with
  `--no-fps-conditioning` to export.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from .. import __version__
from ..atomic_files import atomic_path
from ..checks import check_out_file
from ..models.motion_module_file import to_original_names
from ..models.motion_modules import MOTION_DEFAULTS, adapter_config, adapter_name
from . import ExportResult, read_run_config
from .temporal import DTYPES, check_range, read_run_tensors, run_added_layers, spatial_training

FORMAT = "animatediff-motion-module"
FPS_OUTPUT = "unet.time_embedding.fps_embedding.mlp.2."  # the fps embedding's output layer (zero at its start)


def read_run(run: Path, format: str) -> tuple[dict[str, Any], dict[str, Any], dict[str, torch.Tensor]]:
    """(the run's config.json, its VideoUNet config, its added tensors in fp32) for a run an AnimateDiff format
    can be written from; a one-line error naming the run and what to do for any other (see the module's
    docstring). `format`: the format's name, for the messages."""
    config = read_run_config(run)
    folder, video_config, shapes = run_added_layers(run)
    design = video_config.get("temporal_layers", "pseudo3d")
    if design != "animatediff":
        what = "a LoRA on them has" if format == "lora" else "they have"
        raise ValueError(f"{run} has sdvideo's {design} temporal layers (--temporal-layers {design}): {what} no "
                         f"AnimateDiff equivalent and cannot be written as --format {format}; use --format "
                         "temporal, or train with --temporal-layers animatediff")
    spatial = spatial_training(config)
    if spatial:
        raise ValueError(f"{run} trained weights of the base UNet too (--train {spatial}), which an AnimateDiff "
                         f"--format {format} file cannot hold; share the run folder (config.json and unet/) instead")
    task = config.get("task") if config.get("task") not in (None, "none") else None
    if video_config.get("condition_channels") or task:
        raise ValueError(f"{run} was trained with --task {task or '(frame conditioning)'}: its "
                         "masked-frame conditioning adds input channels to the UNet, which AnimateDiff has no place "
                         f"for, so it cannot be written as --format {format}; use --format temporal")
    tensors = read_run_tensors(folder, shapes)
    output = [t for name, t in tensors.items() if name.startswith(FPS_OUTPUT)]
    if any(t.abs().max() > 0 for t in output):
        raise ValueError(f"{run} learned an fps embedding (--fps-conditioning, on by default), which AnimateDiff has "
                         f"no input for, so it cannot be written as --format {format}; train with "
                         "--no-fps-conditioning, or use --format temporal")
    return config, video_config, tensors


def motion_adapter_config(video_config: dict[str, Any]) -> dict[str, Any]:
    """The diffusers `MotionAdapter` config of the motion modules of a VideoUNet of `video_config`."""
    options = {k: video_config.get(k, v) for k, v in MOTION_DEFAULTS.items()}
    return adapter_config(video_config["unet_config"], options)


def export(run: str | Path, out: str | Path, dtype: str = "fp16") -> ExportResult:
    """Write the motion modules of the run in `run` (a run folder or RUN/best) to `out` (.safetensors) in the
    original AnimateDiff layout, in `dtype`. Refuses, before writing anything, runs whose temporal layers are
    not AnimateDiff motion modules or that learned what a motion module cannot hold (module docstring)."""
    run, out = Path(run), Path(out)
    if out.suffix != ".safetensors":
        raise ValueError(f"--out {out}: the animatediff format is a .safetensors file; name it e.g. "
                         f"{out.stem or 'run'}-mm.safetensors")
    check_out_file(out)
    config, video_config, tensors = read_run(run, "animatediff")
    motion = {adapter_name(k): v for k, v in tensors.items() if adapter_name(k) is not None}  # MotionAdapter names
    check_range(run, motion, dtype)
    original = to_original_names(motion)  # the fps embedding (zero) is left out
    stored = {name: t.to(DTYPES[dtype]).contiguous() for name, t in sorted(original.items())}
    metadata = {
        "format": FORMAT,
        "dtype": dtype,
        "motion_adapter_config": json.dumps(motion_adapter_config(video_config), sort_keys=True),
        "base": Path(str(config.get("base_trained_on") or config.get("base") or "")).name,  # no local path
        "sdvideo_version": __version__,
    }
    with atomic_path(out) as tmp:
        save_file(stored, str(tmp), metadata=metadata)
    return ExportResult(path=out, tensors=len(stored), parameters=sum(t.numel() for t in stored.values()),
                        bytes=out.stat().st_size, dtype=dtype,
                        use="load it as an AnimateDiff motion module (ComfyUI, A1111, diffusers' "
                            "MotionAdapter.from_single_file) on the run's base model")
