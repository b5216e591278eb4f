"""LoRA on the temporal layers: `sdvideo train --lora-rank R --init-temporal RUN_OR_FILE`.

With a rank R above 0, every `nn.Linear` inside the video UNet's temporal layers (`VideoUNet.temporal_modules()`:
temporal attention and its feed-forward, the fps embedding, and whatever modules a temporal design lists there)
gets a peft LoRA adapter: the layer computes W x + (alpha / R) B A x, with A (R x in) and B (out x R), B starting at
zero so the model starts as the temporal layers it was given. Every other weight, the temporal layers' own
included, is frozen: only A and B train, so gradients, optimizer state and checkpoints hold the adapters alone.
The temporal convolutions get no adapter (they apply their weight directly, not as a module call).

A LoRA fine-tunes temporal layers that already learned something, so it needs a starting point: `--init-temporal`
(a run folder or an exported temporal file, `init_temporal.py`), or the AnimateDiff motion modules of
`--init-motion` where that design is built.

At the end of a run the adapters are written alone to RUN/lora.safetensors (`save_lora`: peft's state-dict
names, with rank, alpha, target modules and the temporal design in the header; `read_lora` reads it back) and
merged into the temporal layers (`merge_lora`), so RUN/unet/ is a plain video UNet that `sample`, `eval`,
`interpolate` and `export` load like any other run's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from peft import LoraConfig, get_peft_model_state_dict, inject_adapter_in_model
from peft.tuners.tuners_utils import BaseTunerLayer
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from ..atomic_files import atomic_path

ADAPTER = "default"  # the adapter's name inside peft's layers
LORA_FILE = "lora.safetensors"  # in the run folder
FORMAT = "sdvideo-temporal-lora"
VERSION = 1
STARTING_POINTS = ("init_temporal", "init_motion")  # TrainConfig fields that give the temporal layers' weights


def check_lora_options(cfg: Any) -> None:
    """One-line ValueErrors for LoRA options that cannot train (`TrainConfig.resolved` runs it before anything
    loads): a negative rank, an alpha that is not positive, LoRA with --train other than temporal, LoRA without
    a starting point; and a FileNotFoundError for an --init-temporal path that is not there."""
    from ..checks import check_int, check_number

    check_int("--lora-rank", cfg.lora_rank, 0, hint=" (0: off; e.g. 8)")
    check_number("--lora-alpha", cfg.lora_alpha, above=0, optional=True, hint=" (unset: the rank)")
    if cfg.init_temporal is not None and not Path(cfg.init_temporal).expanduser().exists():
        raise FileNotFoundError(f"--init-temporal {cfg.init_temporal}: no such run folder or file (a run of `sdvideo "
                                "train`, or a file of `sdvideo export --format temporal`)")
    if not cfg.lora_rank:
        if cfg.lora_alpha is not None:
            raise ValueError("--lora-alpha needs --lora-rank R (above 0); drop --lora-alpha or add --lora-rank")
        return
    if cfg.train != "temporal":
        raise ValueError(f"--lora-rank trains adapters on the temporal layers alone, every other weight frozen; it "
                         f"cannot go with --train {cfg.train}: drop --train (or --lora-rank)")
    if not any(getattr(cfg, name, None) for name in STARTING_POINTS):
        raise ValueError("--lora-rank needs --init-temporal RUN or --init-motion FILE: a LoRA fine-tunes trained "
                         "temporal layers (fresh ones start as the identity)")


# Linear layers a temporal module calls as `layer(input=x)`, which peft's LoRA layers cannot take (their forward
# names its argument `x`): by the temporal module's class name. diffusers' AnimateDiff motion module calls its
# proj_in and proj_out so; its attention and feed-forward layers, where AnimateDiff's motion LoRAs sit, are adapted.
CALLED_BY_KEYWORD = {"AnimateDiffTransformer3D": ("proj_in", "proj_out")}


def lora_targets(video: nn.Module) -> list[str]:
    """Names (in `video`) of the `nn.Linear` layers inside its temporal modules (`video.temporal_modules()`, for
    any temporal design), less those in CALLED_BY_KEYWORD: where the adapters go."""
    names = set()
    for prefix, module in video.temporal_modules():
        skip = CALLED_BY_KEYWORD.get(type(module).__name__, ())
        for name, child in module.named_modules():
            if isinstance(child, nn.Linear) and not isinstance(child, BaseTunerLayer) and name not in skip:
                names.add(f"{prefix}.{name}" if name else prefix)
    return sorted(names)


def add_temporal_lora(video: nn.Module, rank: int, alpha: float | None = None) -> LoraConfig:
    """Put rank-`rank` LoRA adapters (peft) on `lora_targets(video)`, in place, and freeze every other weight:
    only the adapters' A and B train. B starts at zero, so the model's output is unchanged. Returns the config."""
    targets = lora_targets(video)
    if not targets:
        raise ValueError("--lora-rank: the model has no linear layers in its temporal layers to adapt")
    config = LoraConfig(r=rank, lora_alpha=float(alpha if alpha is not None else rank), target_modules=targets,
                        lora_dropout=0.0, bias="none")
    inject_adapter_in_model(config, video, adapter_name=ADAPTER)  # also sets video.peft_config
    video.requires_grad_(False)
    for name, p in video.named_parameters():
        if ".lora_A." in name or ".lora_B." in name:
            p.requires_grad_(True)
    return config


def has_lora(video: nn.Module) -> bool:
    return any(isinstance(m, BaseTunerLayer) for m in video.modules())


def _design(video: nn.Module) -> str:
    return str(getattr(video, "config", {}).get("temporal_layers", "pseudo3d"))


def lora_state_dict(video: nn.Module) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The adapters of `video`, as peft names them ("<module>.lora_A.weight", "<module>.lora_B.weight"; fp32,
    on the CPU), and their settings: {"rank", "alpha", "target_modules", "design"} (what `sdvideo export --format
    lora` writes beside them)."""
    config: LoraConfig = video.peft_config[ADAPTER]
    tensors = get_peft_model_state_dict(video, adapter_name=ADAPTER)
    tensors = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in tensors.items()}
    settings = dict(rank=int(config.r), alpha=float(config.lora_alpha), target_modules=sorted(config.target_modules),
                    design=_design(video))
    return tensors, settings


def save_lora(video: nn.Module, path: str | Path, **info: Any) -> Path:
    """Write `lora_state_dict(video)` to `path` (safetensors, atomically). The header holds format and version,
    rank, alpha, target modules, design and the VideoUNet's config as JSON strings, plus `info` (e.g. the
    starting point's name)."""
    tensors, settings = lora_state_dict(video)
    metadata = {"format": FORMAT, "format_version": str(VERSION),
                **{k: json.dumps(v) for k, v in settings.items()},
                "video_unet_config": json.dumps(_plain_config(video), sort_keys=True),
                **{k: json.dumps(v) for k, v in info.items()}}
    path = Path(path)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return path


def read_lora(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """A file of `save_lora`: (adapter tensors, settings: rank, alpha, target_modules, design, video_unet_config
    and any extra header entries). A one-line ValueError naming the file for anything else."""
    path = Path(path)
    with safe_open(str(path), framework="pt") as f:
        metadata = f.metadata() or {}
        tensors = {name: f.get_tensor(name) for name in f.keys()}
    if metadata.get("format") != FORMAT:
        raise ValueError(f"{path} is not an sdvideo temporal LoRA file (`sdvideo train --lora-rank` writes "
                         f"RUN/{LORA_FILE})")
    settings = {k: json.loads(v) for k, v in metadata.items() if k not in ("format", "format_version")}
    return tensors, settings


def _plain_config(video: nn.Module) -> dict[str, Any]:
    from ..models.video_unet import _plain

    return _plain(dict(video.config))


def merged_state_dict(video: nn.Module) -> dict[str, torch.Tensor]:
    """`video.state_dict()` as the plain model has it: each adapted layer's weight merged (W + alpha / R x B A,
    computed in fp32) under the layer's own name, no adapter entries. `video` is left as it is (it may keep
    training). Without adapters: `video.state_dict()`."""
    state = video.state_dict()
    adapted = {name: m for name, m in video.named_modules() if isinstance(m, BaseTunerLayer)}
    if not adapted:
        return state
    out = {k.replace(".base_layer.", "."): v for k, v in state.items() if ".lora_" not in k}
    for name, layer in adapted.items():
        base = layer.get_base_layer()
        out[f"{name}.weight"] = base.weight.detach().float() + layer.get_delta_weight(ADAPTER).detach().float()
    return out


def merge_lora(video: nn.Module) -> nn.Module:
    """Merge the adapters into their layers for good (peft's `merge`) and put the plain layers back in place of
    peft's: `video` becomes the model it would be without LoRA, with the adapted weights. Returns `video`."""
    for name, layer in [(n, m) for n, m in video.named_modules() if isinstance(m, BaseTunerLayer)]:
        layer.merge(safe_merge=True, adapter_names=[ADAPTER])  # refuses NaN/inf weights
        parent_name, _, child = name.rpartition(".")
        setattr(video.get_submodule(parent_name) if parent_name else video, child, layer.get_base_layer())
    if hasattr(video, "peft_config"):
        del video.peft_config
    return video
