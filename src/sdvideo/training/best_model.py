"""RUN/best/: the weights with the lowest held-out loss so far (`sdvideo train --keep-best`).

A small dataset can overfit: the held-out loss falls, then rises while the training loss keeps falling.
With --val-every N --keep-best, each validation that beats the best so far writes RUN/best/ — a run
folder of its own (config.json, unet/, best.json with the step and its validation losses), so
`sdvideo sample --run RUN/best` and `sdvideo eval --run RUN/best` take it as they take RUN.
These are the training weights that were validated, not the EMA average.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import torch
from safetensors.torch import save_file

from ..atomic_files import atomic_dir
from ..models.video_unet import VideoUNet
from .lora import merged_state_dict


def best_so_far(out: Path) -> float:
    """The held-out video loss of RUN/best/ (a resumed run keeps beating it), or inf when there is none."""
    record = out / "best" / "best.json"
    return json.loads(record.read_text())["video"] if record.is_file() else math.inf


def save_best(model: VideoUNet, out: Path, step: int, scores: dict[str, float]) -> Path:
    """Write RUN/best/ atomically (a tmp folder renamed into place); weights in fp32 whatever they train in."""
    with atomic_dir(out / "best") as tmp:
        (tmp / "unet").mkdir()
        model.save_config(tmp / "unet")
        # The model keeps training: copy its weights to the CPU in fp32 instead of converting it in place.
        # (With LoRA adapters: the merged layers under their plain names, as RUN/unet/ holds them.)
        state = {name: t.detach().to("cpu", torch.float32).contiguous() for name, t in merged_state_dict(model).items()}
        save_file(state, tmp / "unet" / "diffusion_pytorch_model.safetensors")
        shutil.copy(out / "config.json", tmp / "config.json")
        (tmp / "best.json").write_text(json.dumps(dict(step=step, **scores), indent=2) + "\n")
    return out / "best"
