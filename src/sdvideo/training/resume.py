"""What `--resume` may change. Options that define a run are refused; the others are recorded.

A run is defined by its data, base, clips (frames, strides, augmentation, held-out share), batch and
accumulation, optimisation (lr and its schedule, optimizer, weight decay, clipping, EMA), diffusion and
noise options, task, what trains, temporal layers and seed: resuming with one of those changed would go on
training another run than the checkpoint's, and config.json would describe neither. `MAY_CHANGE` lists
the options that only say how long, how often, where or how fast: steps, the log/checkpoint/validation/
sample cadence and what validation and samples look at, keep_checkpoints, max_bad_steps, num_workers,
device, mixed_precision, compile and gradient_checkpointing. Every other `TrainConfig` option defines
the run. A base or cache at another path with the same identity (moved or copied) is the same base or
cache. A starting point (--init-temporal, --init-motion) is judged by what it gives: checkpoints hold the
weights that train, so what a resume reads from it again is the frozen temporal weights LoRA trains beside;
`frozen_added_fingerprint` records them, a resume whose starting point gives others is refused, and another
path with the same weights is recorded as a change. A checkpoint saved by an older version is read in
today's options (`config.upgrade_config`: its `stride` is `strides`, its `compile` and `compile_regions` one
`compile`, its optimizer "auto" the one auto chose), so resuming it with the same options changes nothing.

Each resume appends {"step", "checkpoint", "changed": {option: [old, new]}} to config.json's "resumed".
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

from ..data.cache import jsonable
from ..export.temporal import is_added_name
from ..models.base import tensors_fingerprint
from ..models.video_unet import VideoUNet
from ..run_identity import absolute, base_mismatch
from .config import upgrade_config
from .lora import STARTING_POINTS  # judged by frozen_added_fingerprint where a checkpoint recorded it

MAY_CHANGE = frozenset({
    "steps", "log_every", "checkpoint_every", "keep_checkpoints", "val_every", "val_clips", "val_data", "keep_best",
    "sample_every", "sample_prompts", "sample_frames", "sample_steps", "max_bad_steps", "num_workers", "device",
    "mixed_precision", "compile", "gradient_checkpointing",
})
NOT_COMPARED = frozenset({"out", "resume"})


def resume_changes(state: dict[str, Any], config: dict[str, Any], base_identity: dict[str, Any],
                   data_fingerprint: str) -> tuple[dict[str, tuple[Any, Any]], dict[str, tuple[Any, Any]]]:
    """(refused, allowed): option -> (checkpoint's value, new value) for the options `config` (a
    `TrainConfig.to_dict()`) changes against checkpoint state `state` (its "config", "base_identity" and
    "data_fingerprint"). Options the checkpoint's config lacks are not compared."""
    saved = upgrade_config(state.get("config") or {})
    refused: dict[str, tuple[Any, Any]] = {}
    allowed: dict[str, tuple[Any, Any]] = {}
    for name, new in jsonable(config).items():
        if name in NOT_COMPARED or name not in saved:
            continue
        old = saved[name]
        if name == "base" and state.get("base_identity"):  # the same path may hold another base now
            reason = base_mismatch(state["base_identity"], base_identity, unet=True)
            defines = reason is not None
            new = f"{new} ({reason})" if reason else new
        elif name == "data" and state.get("data_fingerprint"):
            defines = state["data_fingerprint"] != data_fingerprint
            new = f"{new} (other videos or latents)" if defines else new
        elif old == new or (name == "temporal" and _temporal(old) == _temporal(new)):
            continue
        elif name in ("base", "data"):  # a checkpoint without identities: the paths, made absolute
            defines = absolute(old) != absolute(new)
        elif name in STARTING_POINTS and "frozen_added_fingerprint" in state:
            defines = False  # the weights it gives are compared once the model is built (`starting_point_refusal`)
        else:
            defines = name not in MAY_CHANGE
        if defines or old != new:
            (refused if defines else allowed)[name] = (old, new)
    return refused, allowed


def frozen_added_fingerprint(model: Any) -> str | None:
    """16 hex digits of the weights `model` adds to its base that do not train (under LoRA: the temporal layers
    the starting point gave; peft's names included), None when every added weight trains. Checkpoints hold only
    what trains, so these are what a resume takes from --init-temporal / --init-motion again."""
    frozen = [(name, p) for name, p in model.named_parameters() if not p.requires_grad and is_added_name(name)]
    return tensors_fingerprint(frozen) if frozen else None


def starting_point_refusal(out: str | Path, checkpoint: Path, state: dict[str, Any], config: dict[str, Any],
                           fingerprint: str | None) -> str | None:
    """The one-line refusal when the frozen added weights a resume built (`fingerprint`) are not those checkpoint
    `state` trained beside; None when they are or the checkpoint recorded none (older versions)."""
    if "frozen_added_fingerprint" not in state or state["frozen_added_fingerprint"] == fingerprint:
        return None
    given = ", ".join(f"{_flag(n)} {config[n]}" for n in STARTING_POINTS if config.get(n)) or "none"
    return (f"{out}: cannot resume from {checkpoint}: the frozen temporal weights of this run's starting point "
            f"({given}) are not the ones the run trained beside (fingerprint {fingerprint} vs "
            f"{state['frozen_added_fingerprint']}); pass the starting point the run began from (its config.json "
            "names it) or choose a new --out")


def _temporal(options: dict[str, Any] | None) -> Any:
    """Temporal options with `VideoUNet`'s defaults filled in: {} (the API's default) and the defaults
    spelled out (the CLI's) make the same layers."""
    defaults = {k: p.default for k, p in inspect.signature(VideoUNet.__init__).parameters.items()
                if p.default is not inspect.Parameter.empty}
    return jsonable({**defaults, **(options or {})})


def _flag(name: str) -> str:
    return "temporal options" if name == "temporal" else "--" + name.replace("_", "-")


def _show(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def refusal(out: str | Path, checkpoint: Path, refused: dict[str, tuple[Any, Any]]) -> str:
    """The one-line error for options a resume may not change."""
    listed = ", ".join(f"{_flag(k)} {_show(old)} -> {_show(new)}" for k, (old, new) in refused.items())
    return (f"{out}: --resume cannot change what defines the run ({listed}; {checkpoint.name} was trained with the "
            "first values); resume with them or train into a new --out (steps, cadences, workers, device, precision, "
            "compile and gradient checkpointing may change)")


def resumed_record(out: Path, step: int, checkpoint: Path, allowed: dict[str, tuple[Any, Any]]) -> list[dict[str, Any]]:
    """config.json's "resumed" list with this resume appended (the earlier entries from out/config.json)."""
    earlier: list[dict[str, Any]] = []
    try:
        earlier = list(json.loads((out / "config.json").read_text()).get("resumed") or [])
    except (OSError, ValueError, AttributeError, TypeError):
        pass
    return earlier + [{"step": step, "checkpoint": checkpoint.name,
                       "changed": {k: [old, new] for k, (old, new) in allowed.items()}}]
