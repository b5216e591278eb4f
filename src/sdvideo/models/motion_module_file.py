"""Motion module files (`sdvideo train --init-motion PATH`): AnimateDiff weights to start the temporal layers from.

Two forms are read, neither by unpickling:

- an original AnimateDiff file, `.ckpt` (read with `torch.load(..., weights_only=True)`) or `.safetensors`,
  keys like `down_blocks.0.motion_modules.0.temporal_transformer.transformer_blocks.0.attention_blocks.0.to_q
  .weight`, converted to diffusers names by diffusers' own `convert_animatediff_checkpoint_to_diffusers`;
- a diffusers `MotionAdapter` folder: `config.json` + `diffusion_pytorch_model.safetensors` (a pickled `.bin`
  is refused).

`motion_options(path)` gives the VideoUNet motion options the file was made with (a folder's config; for an
original file, read off its weights: blocks, channels, layers, mid block, position-table length; the head
count is not in the weights and is 8, as in every AnimateDiff release). `load_motion_file(video, path)`
checks the file against the model and loads it. Anything wrong (another UNet size, a truncated file, a LoRA
or another kind of weights) is one `MotionModuleError` line naming the file; nothing is loaded then.

`to_original_names(state)` is the reverse mapping (diffusers `MotionAdapter` names -> original AnimateDiff
names, with the position tables the original files carry), for writing files AnimateDiff tools and
`MotionAdapter.from_single_file` read.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from .motion_modules import motion_options_from_adapter_config
from .tensor_file import read_tensor_file

if TYPE_CHECKING:
    from .video_unet import VideoUNet

Tensors = dict[str, torch.Tensor]
ADAPTER_WEIGHTS = "diffusion_pytorch_model.safetensors"
_ORIGINAL_MARK = ".temporal_transformer."
_BLOCK = re.compile(r"^(down_blocks\.(\d+)|up_blocks\.(\d+)|mid_block)\.motion_modules\.(\d+)\.(.+)$")


class MotionModuleError(ValueError):
    """A motion module file that cannot be used; the message is one line naming the file."""


# ---------------------------------------------------------------- reading
def read_motion_file(path: str | Path) -> tuple[Tensors, dict[str, Any]]:
    """(weights under `MotionAdapter` names, VideoUNet motion options plus `block_out_channels` and
    `motion_layers_per_block`) of a motion module file or folder."""
    path = Path(path)
    if path.is_dir():
        return _read_adapter_folder(path)
    if not path.exists():
        raise MotionModuleError(f"{path}: no such motion module file or folder")
    state = _read_tensors(path)
    _refuse_lora(path, state)
    if not any(_ORIGINAL_MARK in k for k in state):
        raise MotionModuleError(f"{path}: not an AnimateDiff motion module (no "
                                f"'...motion_modules.N.temporal_transformer...' weights){_looks_like(state)}")
    from diffusers.loaders.single_file_utils import convert_animatediff_checkpoint_to_diffusers

    motion = {k: v for k, v in state.items() if ".motion_modules." in k}
    converted = convert_animatediff_checkpoint_to_diffusers(motion)
    options = _options_from_weights(path, converted)
    pe = [v for k, v in motion.items() if k.endswith("pos_encoder.pe")]
    if pe:
        options["motion_max_seq_length"] = int(pe[0].shape[-2])  # (1, max_seq_length, channels)
    return converted, options


def _read_tensors(path: Path) -> Tensors:
    if path.suffix.lower() == ".bin":
        raise MotionModuleError(f"{path}: a pickled .bin is not read; convert it to .safetensors")
    return read_tensor_file(path, "expected an AnimateDiff motion module (.ckpt or .safetensors) or a diffusers "
                            "MotionAdapter folder", MotionModuleError)


def _read_adapter_folder(folder: Path) -> tuple[Tensors, dict[str, Any]]:
    config_path, weights = folder / "config.json", folder / ADAPTER_WEIGHTS
    if not weights.is_file():
        pickled = folder / "diffusion_pytorch_model.bin"
        if pickled.is_file():
            raise MotionModuleError(f"{folder}: holds only a pickled diffusion_pytorch_model.bin, which is not "
                                    f"read; save the MotionAdapter with safe_serialization=True")
        raise MotionModuleError(f"{folder}: not a diffusers MotionAdapter folder (no {ADAPTER_WEIGHTS})")
    try:
        config = json.loads(config_path.read_text())
    except (OSError, ValueError) as exc:
        raise MotionModuleError(f"{folder}: no readable config.json ({type(exc).__name__})") from exc
    if not isinstance(config, dict) or config.get("_class_name", "MotionAdapter") != "MotionAdapter":
        name = config.get("_class_name") if isinstance(config, dict) else type(config).__name__
        raise MotionModuleError(f"{folder}: config.json is a {name}'s, not a MotionAdapter's")
    try:
        options = motion_options_from_adapter_config(config)
    except ValueError as exc:
        raise MotionModuleError(f"{folder}: {exc}") from exc
    options["block_out_channels"] = [int(c) for c in config.get("block_out_channels", (320, 640, 1280, 1280))]
    options["motion_layers_per_block"] = config.get("motion_layers_per_block", 2)
    state = _read_tensors(weights)
    _refuse_lora(weights, state)
    if not any(".motion_modules." in k for k in state):
        raise MotionModuleError(f"{weights}: holds no motion module weights{_looks_like(state)}")
    return state, options


def _refuse_lora(path: Path, state: Tensors) -> None:
    lora = [k for k in state if "lora" in k.lower()]
    if lora:
        raise MotionModuleError(f"{path}: a LoRA file ({len(lora)} LoRA tensors, e.g. {lora[0]}), not motion "
                                "module weights; --init-motion takes a whole motion module")


def _looks_like(state: Tensors) -> str:
    """A hint at what a non-motion file is."""
    keys = list(state)
    if any("lora" in k.lower() for k in keys):
        return "; it looks like a LoRA file"
    if any(k.startswith("model.diffusion_model.") for k in keys):
        return "; it looks like a Stable Diffusion checkpoint"
    return f" among its {len(keys)} tensors" if keys else "; it holds no tensors"


def _options_from_weights(path: Path, state: Tensors) -> dict[str, Any]:
    """Motion options read off diffusers-named weights: channels, modules and layers per block, mid block."""
    down: dict[int, dict[int, set[int]]] = {}
    mid_layers: set[int] = set()
    for key in state:
        m = _BLOCK.match(key)
        if not m:
            continue
        layer = re.match(r"transformer_blocks\.(\d+)\.", m[5])
        if m[2] is not None:
            modules = down.setdefault(int(m[2]), {})
            modules.setdefault(int(m[4]), set()).update({int(layer[1])} if layer else set())
        elif m[1] == "mid_block" and layer:
            mid_layers.add(int(layer[1]))
    if not down:
        raise MotionModuleError(f"{path}: no down-block motion modules found")
    channels, per_block, layers = [], [], []
    for i in range(max(down) + 1):
        weight = state.get(f"down_blocks.{i}.motion_modules.0.proj_in.weight")
        if weight is None or i not in down:
            raise MotionModuleError(f"{path}: down block {i}'s motion modules are incomplete")
        channels.append(int(weight.shape[1]))  # proj_in: (inner, channels)
        per_block.append(len(down[i]))
        layers.append(len(down[i].get(0, ())) or 1)
    return dict(
        block_out_channels=channels,
        motion_layers_per_block=per_block[0] if len(set(per_block)) == 1 else per_block,
        motion_num_attention_heads=8,  # not in the weights; 8 in every AnimateDiff release
        motion_norm_num_groups=None,
        motion_max_seq_length=32,
        use_motion_mid_block=bool(mid_layers) or any(k.startswith("mid_block.") for k in state),
        motion_transformer_layers_per_block=layers[0] if len(set(layers)) == 1 else layers,
        motion_transformer_layers_per_mid_block=len(mid_layers) or 1,
    )


# ---------------------------------------------------------------- using
def motion_options(path: str | Path) -> dict[str, Any]:
    """The VideoUNet options (`temporal_layers="animatediff"` and the motion_* ones) for a motion module file."""
    from .motion_modules import MOTION_DEFAULTS

    _, options = read_motion_file(path)
    return {"temporal_layers": "animatediff", **{k: options[k] for k in MOTION_DEFAULTS}}


def load_motion_file(video: "VideoUNet", path: str | Path) -> None:
    """Load a motion module file into `video`'s motion modules, after checking that it was made for a UNet of
    `video`'s blocks and channels; a `MotionModuleError` naming the file otherwise, with nothing loaded."""
    path = Path(path)
    if not video.animatediff:
        raise MotionModuleError(f"{path}: motion modules load into --temporal-layers animatediff only, "
                                f"this model has {video.config.temporal_layers}")
    state, options = read_motion_file(path)
    unet = video.unet.config
    ours = [int(c) for c in unet.block_out_channels]
    if options["block_out_channels"] != ours:
        raise MotionModuleError(f"{path}: a motion module for a UNet with block channels {options['block_out_channels']}, "
                                f"this base's UNet has {ours}")
    layers = options["motion_layers_per_block"]
    if _per_block(layers, len(ours)) != _per_block(unet.layers_per_block, len(ours)):
        raise MotionModuleError(f"{path}: a motion module for {layers} layers per block, this base's UNet has "
                                f"{unet.layers_per_block}")
    mine = video.config
    for key in ("use_motion_mid_block", "motion_max_seq_length"):
        if options[key] != mine[key]:
            raise MotionModuleError(f"{path}: has {key}={options[key]}, the model was built with {mine[key]}")
    try:
        video.load_motion_adapter_state_dict(state)
    except ValueError as exc:
        raise MotionModuleError(f"{path}: {exc}") from exc


def _per_block(value: Any, blocks: int) -> list[int]:
    return [int(value)] * blocks if isinstance(value, int) else [int(v) for v in value]


# ---------------------------------------------------------------- writing
_TO_ORIGINAL = ((".norm1.", ".norms.0."), (".norm2.", ".norms.1."), (".norm3.", ".ff_norm."),
                (".attn1.", ".attention_blocks.0."), (".attn2.", ".attention_blocks.1."))


def to_original_names(state: Tensors) -> Tensors:
    """`MotionAdapter` weights (diffusers names) under original AnimateDiff names, the inverse of diffusers'
    `convert_animatediff_checkpoint_to_diffusers`: `down_blocks.0.motion_modules.0.transformer_blocks.0.attn1.to_q
    .weight` -> `down_blocks.0.motion_modules.0.temporal_transformer.transformer_blocks.0.attention_blocks.0.to_q
    .weight`; each block's sinusoid table `...pos_embed.pe` becomes both attention blocks' `pos_encoder.pe`, as
    the original files hold it. Tensors are not copied (but for the second table), so `safetensors.torch.save_file`
    can write the result as it is (make them contiguous first)."""
    out: Tensors = {}
    for key, value in state.items():
        m = _BLOCK.match(key)
        if not m:
            raise ValueError(f"not a MotionAdapter weight name: {key}")
        head, rest = f"{m[1]}.motion_modules.{m[4]}.temporal_transformer.", "." + m[5]
        if rest.endswith(".pos_embed.pe"):
            stem = rest[: -len("pos_embed.pe")]
            for attention in (0, 1):
                # a copy for the second: safetensors refuses tensors that share memory
                out[f"{head}{stem[1:]}attention_blocks.{attention}.pos_encoder.pe"] = value.clone() if attention else value
            continue
        for diffusers_name, original in _TO_ORIGINAL:
            rest = rest.replace(diffusers_name, original)
        out[head + rest[1:]] = value
    return out


def with_motion_options(temporal: dict[str, Any], path: str | Path) -> dict[str, Any]:
    """VideoUNet options `temporal` with the motion options of the file at `path` (what `--init-motion` trains
    with, recorded in the run's config); a ValueError where `temporal` sets one of them otherwise."""
    options = motion_options(path)
    clash = [k for k, v in options.items() if k in temporal and k != "temporal_layers" and temporal[k] != v]
    if clash:
        listed = ", ".join(f"{k}={temporal[k]!r} (the file's: {options[k]!r})" for k in clash)
        raise MotionModuleError(f"{path}: the temporal options set {listed}; leave them unset to take the file's")
    return {**temporal, **options}
