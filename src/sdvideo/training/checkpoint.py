"""Training checkpoints: written atomically, in safetensors, enough to continue exactly.

RUN/checkpoints/step-000200/
    trainable.safetensors   the weights that train (the frozen image model comes from --base)
    ema.safetensors         EMA shadow weights, when EMA is on
    optimizer.safetensors   optimizer state tensors, keyed "<parameter index>.<name>" (AdamW's and sdvideo's
                            8-bit AdamW's states are plain tensors); the rest of the optimizer state (param
                            groups, non-tensor entries such as the 8-bit AdamW's integer step) in state.json
    rng-rank<r>.safetensors every process's random generator states
    state.json              step, batches consumed, LR schedule, loss history, config, optimizer settings
A checkpoint is written into `step-000200.tmp/` and renamed when complete, so a kill at any moment
leaves either the previous set or the new one, never a half-written one.

Nothing here is unpickled: checkpoints are read through safetensors and JSON only, since run folders are
shared like model files and unpickling one could run code. Any other file in a checkpoint folder (an
`optimizer.pt`, say) is never opened; a checkpoint whose optimizer state is only such a file is refused.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from ..atomic_files import atomic_dir


def _json_default(value: Any) -> Any:
    """Tensors inside JSON state (torchao's 8-bit AdamW keeps `lr` as a tensor) -> tagged lists."""
    if isinstance(value, torch.Tensor):
        return {"__tensor__": value.detach().cpu().tolist(), "dtype": str(value.dtype).removeprefix("torch.")}
    raise TypeError(f"cannot store {type(value).__name__} in a checkpoint's state.json")


def _json_object(obj: dict[str, Any]) -> Any:
    if "__tensor__" in obj:
        return torch.tensor(obj["__tensor__"], dtype=getattr(torch, obj["dtype"]))
    return obj


def read_state(path: Path) -> dict[str, Any]:
    """A checkpoint's state.json, tensors restored."""
    return json.loads((path / "state.json").read_text(), object_hook=_json_object)


def checkpoint_dirs(run: str | Path) -> list[Path]:
    root = Path(run) / "checkpoints"
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith("step-") and "." not in p.name)


def latest_checkpoint(run: str | Path) -> Path | None:
    dirs = checkpoint_dirs(run)
    return dirs[-1] if dirs else None


def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """An optimizer's state dict split into safetensors' part (plain tensors, "<index>.<name>": contiguous,
    on the CPU) and JSON's: {"param_groups": [...], "values": {"<index>": {name: non-tensor value}}}."""
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    values: dict[str, dict[str, Any]] = {}
    for idx, entries in state["state"].items():
        for key, value in entries.items():
            if not isinstance(value, torch.Tensor):
                values.setdefault(str(idx), {})[key] = value
            elif type(value) is torch.Tensor:
                tensors[f"{idx}.{key}"] = value.detach().cpu().contiguous()
            else:
                raise TypeError(
                    f"optimizer state {idx}.{key} is a {type(value).__name__}, which a safetensors checkpoint cannot "
                    "hold; checkpoints take plain-tensor optimizer states (--optimizer adamw or adamw8bit)")
    return tensors, {"param_groups": state["param_groups"], "values": values}


def save_checkpoint(
    run: str | Path,
    step: int,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    state: dict[str, Any],
    ema_state: dict[str, torch.Tensor] | None,
    rng_states: dict[int, dict[str, torch.Tensor]],
    keep: int = 3,
) -> Path:
    """Write checkpoint `step` (main process only) and keep the newest `keep` checkpoints."""
    root = Path(run) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step:07d}"
    with atomic_dir(final, durable=True) as tmp:
        _write_checkpoint(tmp, step, model, optimizer, state, ema_state, rng_states)
    for old in checkpoint_dirs(run)[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _write_checkpoint(tmp: Path, step: int, model: nn.Module, optimizer: torch.optim.Optimizer, state: dict[str, Any],
                      ema_state: dict[str, torch.Tensor] | None, rng_states: dict[int, dict[str, torch.Tensor]]) -> None:
    """The files of one checkpoint (see the module docstring), into the folder `tmp`."""
    trainable = {n: p.detach().float().cpu().contiguous() for n, p in model.named_parameters() if p.requires_grad}
    save_file(trainable, tmp / "trainable.safetensors")
    if ema_state is not None:
        save_file({k: v.cpu().contiguous() for k, v in ema_state.items()}, tmp / "ema.safetensors")
    tensors, meta = _optimizer_tensors(optimizer)
    save_file(tensors, tmp / "optimizer.safetensors")
    for rank, gens in rng_states.items():
        save_file(gens, tmp / f"rng-rank{rank}.safetensors")
    (tmp / "state.json").write_text(json.dumps({**state, "optimizer": meta, "step": step}, default=_json_default))


def load_checkpoint(
    path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, device: torch.device
) -> tuple[dict[str, Any], dict[str, torch.Tensor] | None]:
    """Restore weights and optimizer in place; returns (state.json contents, EMA tensors or None)."""
    state = read_state(path)
    weights = load_file(path / "trainable.safetensors")
    params = dict(model.named_parameters())
    missing = [n for n, p in params.items() if p.requires_grad and n not in weights]
    if missing:
        raise ValueError(f"{path}: checkpoint lacks {len(missing)} trainable weights (e.g. {missing[0]}); "
                         "it was made with other --train / temporal options")
    with torch.no_grad():
        for n, value in weights.items():
            params[n].copy_(value.to(params[n].dtype))
    saved = _read_optimizer_state(path, state, device)
    try:
        optimizer.load_state_dict(saved)
    except ValueError as err:  # e.g. another optimizer's state (AdamW8bit names the fix)
        raise ValueError(f"{path}: {err}") from None
    _follow_parameter_layouts(optimizer)
    ema = load_file(path / "ema.safetensors") if (path / "ema.safetensors").exists() else None
    return state, ema


def _read_optimizer_state(path: Path, state: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """The optimizer state dict from optimizer.safetensors (tensors; `step` counters stay on the CPU, where
    torch's optimizers keep them) and state.json (param groups and non-tensor entries)."""
    file = path / "optimizer.safetensors"
    if not file.is_file():
        others = sorted(p.name for p in path.glob("optimizer*") if p.is_file())
        if others:
            raise ValueError(
                f"{path / others[0]}: not loaded (sdvideo reads optimizer state from optimizer.safetensors only and never "
                "unpickles a file, as that can run code); resume from a checkpoint that has optimizer.safetensors, "
                "or start a new run")
        raise ValueError(f"{path}: checkpoint lacks optimizer.safetensors; resume from a complete checkpoint")
    entries: dict[int, dict[str, Any]] = {}
    for key, value in load_file(file).items():
        idx, name = key.split(".", 1)
        entries.setdefault(int(idx), {})[name] = value.to(device) if name != "step" else value
    meta = state["optimizer"]
    for idx, values in meta.get("values", {}).items():
        entries.setdefault(int(idx), {}).update(values)
    return {"state": entries, "param_groups": meta["param_groups"]}


def _follow_parameter_layouts(optimizer: torch.optim.Optimizer) -> None:
    """Give each restored state tensor its parameter's memory layout. Files hold them contiguous, but a
    compiled run's convolution weights are channels-last, and fused AdamW reads a parameter and its
    moments element by element in memory order (mismatched layouts gave wrong updates)."""
    for group in optimizer.param_groups:
        for p in group["params"]:
            entries = optimizer.state.get(p, {})
            for name, value in entries.items():
                if type(value) is torch.Tensor and value.shape == p.shape and value.stride() != p.stride():
                    entries[name] = torch.empty_like(p, dtype=value.dtype).copy_(value)


def load_rng_states(path: Path, rank: int) -> dict[str, torch.Tensor] | None:
    f = path / f"rng-rank{rank}.safetensors"
    return load_file(f) if f.exists() else None
