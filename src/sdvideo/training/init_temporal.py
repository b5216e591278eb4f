"""`sdvideo train --init-temporal RUN_OR_FILE`: start the temporal layers from trained ones.

The source is a run folder of `sdvideo train` (or RUN/best: the weights of its unet/, as `sample --run` uses
them) or a file of `sdvideo export --format temporal`. What the base adds to be a video model comes from it:
temporal layers, fps embedding and, for a `--task` run, the masked-frame conditioning; the image model comes
from --base as always. It is the starting point `--lora-rank` needs, and without LoRA it continues training
those layers in full on other clips.

Before any weight is copied, one-line errors naming the source and the fix refuse a source whose layers were
built for another base UNet (block channels, blocks, cross-attention width: `export/temporal.py`'s checks),
with other temporal options or another temporal design than this run builds, or whose weights do not fit.
Everything is read through safetensors and JSON (nothing unpickled).
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open

from ..export.temporal import (
    TemporalFile,
    added_shapes_of,
    check_architecture,
    check_shapes,
    read_header,
    read_run_tensors,
    run_added_layers,
)
from ..models.video_unet import VideoUNet, _plain

# VideoUNet options set by other training flags than their own name
FLAGS = {"condition_channels": "--task", "temporal_layers": "--temporal-layers"}


def read_source(path: str | Path) -> tuple[TemporalFile, Any]:
    """(header, tensor reader) of an --init-temporal source: the header as `export.temporal.read_header` gives
    it (the VideoUNet config, shapes), and a function returning the named tensors in fp32."""
    path = Path(path).expanduser()
    if path.is_dir():
        if (path / "model_index.json").is_file() or not (path / "config.json").is_file():
            raise ValueError(f"--init-temporal {path}: not a run folder of `sdvideo train` (config.json and unet/); "
                             "pass a run folder or a file of `sdvideo export --format temporal`")
        folder, video_config, shapes = run_added_layers(path)
        run_config = json.loads((path / "config.json").read_text())
        header = TemporalFile(path=path, video_config=video_config, run_config=run_config,
                              base=Path(str(run_config.get("base_trained_on") or run_config.get("base") or "")).name,
                              base_identity=run_config.get("base_identity"), dtype="fp32", shapes=shapes)
        return header, lambda names: read_run_tensors(folder, {n: shapes[n] for n in names})
    header = read_header(path)

    def tensors(names):
        with safe_open(str(path), framework="pt") as f:
            return {name: f.get_tensor(name).to(torch.float32) for name in names}

    return header, tensors


def check_design(header: TemporalFile, video: VideoUNet) -> None:
    """Refuse a source whose temporal options (design, attention, kernel, fps conditioning, time embedding,
    conditioning channels, ...) differ from `video`'s, naming the first that differs and the flag to set. An
    option one side's config lacks counts as VideoUNet's default (files of older versions)."""
    defaults = {k: p.default for k, p in inspect.signature(VideoUNet.__init__).parameters.items()
                if p.default is not inspect.Parameter.empty}
    theirs = {**defaults, **{k: v for k, v in header.video_config.items() if k != "unet_config"}}
    ours = {**defaults, **{k: v for k, v in _plain(dict(video.config)).items() if k != "unet_config"}}
    for key in sorted(set(theirs) | set(ours), key=lambda k: (k != "temporal_layers", k)):  # the design first
        if theirs.get(key) != ours.get(key):
            flag = FLAGS.get(key, "--" + key.replace("_", "-"))
            raise ValueError(f"--init-temporal {header.path}: its temporal layers were built with {key}="
                             f"{json.dumps(theirs.get(key))}, this run's with {json.dumps(ours.get(key))}; train with "
                             f"the same option ({flag}) or start from another run or file")


def load_initial_temporal(video: VideoUNet, path: str | Path, where: str = "--base") -> None:
    """Copy the added layers of the source at `path` into `video` (in place), after checking that they fit:
    base UNet architecture (`where` names the base in messages), temporal options and every shape."""
    header, read = read_source(path)
    check_architecture(header, dict(video.unet.config), where)
    check_design(header, video)
    expected = added_shapes_of(video)
    check_shapes(header, expected, where)
    params = dict(video.named_parameters())
    buffers = dict(video.named_buffers())
    with torch.no_grad():
        for name, value in read(list(expected)).items():
            target = params.get(name, buffers.get(name))
            target.copy_(value.to(target.dtype))
