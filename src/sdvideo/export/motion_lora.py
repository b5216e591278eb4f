"""The `lora` export format: a LoRA run's adapters as a MotionLoRA for AnimateDiff in diffusers.

    sdvideo train ... --temporal-layers animatediff --init-motion mm_sd_v15_v2.ckpt --no-fps-conditioning \\
        --lora-rank 8 --out runs/zoom
    sdvideo export runs/zoom --format lora --out zoom-motion-lora.safetensors

    pipe = AnimateDiffPipeline.from_pretrained(sd15, motion_adapter=MotionAdapter.from_single_file(
        "mm_sd_v15_v2.ckpt", ...))                      # the motion module the LoRA run started from
    pipe.load_lora_weights("zoom-motion-lora.safetensors")

The adapters of RUN/lora.safetensors (`training/lora.py`, written by `train --lora-rank`) on the motion
modules' attention and feed-forward layers, under the names diffusers' LoRA loader gives a `UNetMotionModel`'s
layers, in peft's form with the `unet.` prefix of a pipeline's LoRA file:

    unet.down_blocks.0.motion_modules.0.transformer_blocks.0.attn1.to_q.lora_A.weight     (rank, in)
    unet.down_blocks.0.motion_modules.0.transformer_blocks.0.attn1.to_q.lora_B.weight     (out, rank)

Scale: the run's layers add alpha / rank x B A. A file in this form carries no alpha, and loaders then take
alpha = rank (scale 1), so the exporter folds alpha / rank into B: every loader applies the run's exact update
at `lora_scale` 1, whatever --lora-alpha was. The header keeps the run's `rank` and `alpha` (information only),
`format` ("sdvideo-motion-lora"), and `starting_point`: the motion module the run's LoRA was trained on (the
--init-motion or --init-temporal name), which the LoRA must be put on. Weights in `--dtype` (fp16 by default).

Refused in one line, nothing written: runs trained without --lora-rank (`--format animatediff` or `temporal`
write their layers), a LoRA on sdvideo's pseudo-3D temporal layers (no AnimateDiff equivalent), a missing or
unreadable RUN/lora.safetensors, and what `--format animatediff` refuses (`--task`, a learned fps embedding:
`animatediff.read_run`; adapters on a zero fps embedding are dropped with it).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import save_file

from .. import __version__
from ..atomic_files import atomic_path
from ..checks import check_out_file
from ..models.motion_modules import adapter_name
from . import ExportResult
from .animatediff import read_run
from .temporal import check_range
from .temporal import DTYPES

FORMAT = "sdvideo-motion-lora"
PREFIX = "unet."  # diffusers' LoRA loader takes a pipeline file's UNet entries under this prefix


def export(run: str | Path, out: str | Path, dtype: str = "fp16") -> ExportResult:
    """Write the LoRA adapters of the run in `run` to `out` (.safetensors) as a MotionLoRA for diffusers'
    `AnimateDiffPipeline.load_lora_weights`, alpha / rank folded into B, in `dtype` (module docstring)."""
    from ..training.lora import LORA_FILE, read_lora

    run, out = Path(run), Path(out)
    if out.suffix != ".safetensors":
        raise ValueError(f"--out {out}: the lora format is a .safetensors file; name it e.g. "
                         f"{out.stem or 'run'}-motion-lora.safetensors")
    check_out_file(out)
    if (run / "config.json").is_file() and not (run / "model_index.json").is_file():
        config = json.loads((run / "config.json").read_text())
        if not config.get("lora_rank") and not (run / LORA_FILE).exists():
            design = (config.get("temporal") or {}).get("temporal_layers", "pseudo3d")
            formats = "animatediff or temporal" if design == "animatediff" else "temporal"
            raise ValueError(f"{run} was trained without --lora-rank, so it has no LoRA to export; use --format "
                             f"{formats}")
    read_run(run, "lora")  # an animatediff run an AnimateDiff LoRA can go on (one line otherwise)
    path = run / LORA_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing (the run trained with --lora-rank, which writes it at its end); "
                                "copy it back, or train the run again with --resume")
    try:
        adapters, settings = read_lora(path)
    except (SafetensorError, OSError, json.JSONDecodeError) as exc:
        detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise ValueError(f"{path}: not a readable LoRA file ({detail}): truncated or damaged? copy it back from the "
                         "run, or train it again with --resume") from None
    if settings.get("design") != "animatediff":
        raise ValueError(f"{path}: a LoRA on sdvideo's {settings.get('design')} temporal layers, which has no "
                         "AnimateDiff equivalent; use --format temporal")
    rank, alpha = int(settings["rank"]), float(settings["alpha"])

    tensors: dict[str, torch.Tensor] = {}
    for name, value in adapters.items():
        if "fps_embedding." in name:
            continue  # on an fps embedding that adds nothing (`read_run` refused a learned one): dropped with it
        target = adapter_name(name)  # unet.<block>.attentions.<j>.temporal.<rest> -> <block>.motion_modules.<j>.<rest>
        if target is None or not name.endswith((".lora_A.weight", ".lora_B.weight")):
            raise ValueError(f"{path}: adapter {name} is not on a motion module; export the run with --format "
                             "temporal")
        value = value.to(torch.float32)
        if name.endswith(".lora_B.weight"):
            value = value * (alpha / rank)  # (out, rank): the scale folded in, loaders take alpha = rank
        tensors[PREFIX + target] = value
    if not tensors:
        raise ValueError(f"{path}: holds no adapters on motion modules; nothing to export")
    check_range(run, tensors, dtype)
    stored = {name: t.to(DTYPES[dtype]).contiguous() for name, t in sorted(tensors.items())}
    start = settings.get("init_motion") or settings.get("init_temporal") or ""
    metadata = {
        "format": FORMAT,
        "dtype": dtype,
        "rank": str(rank),
        "alpha": f"{alpha:g}",
        "alpha_folded_into_lora_B": "true",
        "starting_point": str(start),
        "base": str(settings.get("base") or ""),
        "sdvideo_version": __version__,
    }
    with atomic_path(out) as tmp:
        save_file(stored, str(tmp), metadata=metadata)
    on = f" on the motion module it was trained from ({start})" if start else ""
    return ExportResult(path=out, tensors=len(stored), parameters=sum(t.numel() for t in stored.values()),
                        bytes=out.stat().st_size, dtype=dtype,
                        use=f"load it with AnimateDiffPipeline.load_lora_weights{on}")
