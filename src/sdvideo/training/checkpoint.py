"""Training checkpoints: written atomically, in safetensors, enough to continue exactly.

RUN/checkpoints/step-000200/
    trainable.safetensors   the weights that train (the frozen image model comes from --base; with --lora-rank
                            the adapters alone, the temporal layers under them from --init-temporal)
    ema.safetensors         EMA shadow weights, when EMA is on
    optimizer.safetensors   optimizer state tensors, keyed "<parameter index>.<name>" (AdamW's and sdvideo's
                            8-bit AdamW's states are plain tensors); the rest of the optimizer state (param
                            groups, non-tensor entries such as the 8-bit AdamW's integer step) in state.json
    rng-rank<r>.safetensors every process's random generator states
    state.json              step, batches consumed, LR schedule, loss history, config, optimizer settings
    manifest.json           written last: every other file's size and crc32
A checkpoint is written into `step-000200.tmp/` and renamed when complete, so a kill at any moment
leaves either the previous set or the new one, never a half-written one. Damage after that (a truncated
copy, bytes overwritten on disk) is found by `checkpoint_damage` against the manifest: `--resume` uses the
newest intact checkpoint (`intact_checkpoint`) and sets damaged newer ones aside as `step-N.damaged/`.

Nothing here is unpickled: checkpoints are read through safetensors and JSON only, since run folders are
shared like model files and unpickling one could run code. Any other file in a checkpoint folder (an
`optimizer.pt`, say) is never opened; a checkpoint whose optimizer state is only such a file is refused.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import zlib
from concurrent.futures import ThreadPoolExecutor
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


MANIFEST = "manifest.json"


def _file_sum(path: Path, chunk: int = 1 << 24) -> tuple[int, int]:
    """(size in bytes, crc32) of a file, read in 16 MiB pieces."""
    size, crc = 0, 0
    with open(path, "rb") as f:
        while block := f.read(chunk):
            size, crc = size + len(block), zlib.crc32(block, crc)
    return size, crc


def _file_sums(folder: Path, names: list[str]) -> dict[str, tuple[int, int]]:
    """`_file_sum` of each named file, in threads: zlib releases the GIL, so files are summed in parallel."""
    if not names:
        return {}
    with ThreadPoolExecutor(max(1, min(len(names), os.cpu_count() or 1))) as pool:
        return dict(zip(names, pool.map(lambda name: _file_sum(folder / name), names)))


def _write_manifest(folder: Path) -> None:
    """manifest.json, the checkpoint's last file: each other file's size and crc32, read back after writing
    (from the page cache: about a second per GB)."""
    names = sorted(p.name for p in folder.iterdir() if p.is_file() and p.name != MANIFEST)
    files = {name: {"bytes": size, "crc32": f"{crc:08x}"} for name, (size, crc) in _file_sums(folder, names).items()}
    (folder / MANIFEST).write_text(json.dumps({"files": files}, indent=1) + "\n")


def checkpoint_damage(path: Path, full: bool = True) -> str | None:
    """Why checkpoint `path` is damaged, in a few words; None when it is intact.

    With a manifest: every listed file is there, of the listed size and (`full`) crc32. `full=False` is
    the quick look `load_checkpoint` takes (manifest readable, files present of the listed sizes; missing
    ones are left to the loader's own messages). Without a manifest (a checkpoint of an older sdvideo),
    `full` checks that state.json parses and each safetensors file is as long as its header says."""
    try:
        if not (path / MANIFEST).is_file():
            return _unlisted_damage(path) if full else None
        try:
            listed = json.loads((path / MANIFEST).read_text(encoding="utf-8"))["files"]
            files = {str(name): (int(e["bytes"]), int(e["crc32"], 16)) for name, e in listed.items()}
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            return f"{MANIFEST} is unreadable ({type(e).__name__})"
        for name, (size, _) in files.items():
            if not (path / name).is_file():
                if full:
                    return f"{name} is missing"
                continue
            actual = (path / name).stat().st_size
            if actual != size:
                return f"{name} has {actual} bytes, the manifest says {size}"
        if full:
            for name, (_, crc) in _file_sums(path, list(files)).items():
                if crc != files[name][1]:
                    return f"{name} fails its crc32 check ({crc:08x}, the manifest says {files[name][1]:08x})"
    except OSError as e:
        return f"unreadable ({e.strerror or e})"
    return None


def _unlisted_damage(path: Path) -> str | None:
    """`checkpoint_damage` of a checkpoint without a manifest: what its files' own structure shows."""
    try:
        read_state(path)
    except (ValueError, TypeError) as e:
        return f"state.json is unreadable ({type(e).__name__})"
    for f in sorted(path.glob("*.safetensors")):
        size = f.stat().st_size
        with open(f, "rb") as fh:
            head = fh.read(8)
            n = struct.unpack("<Q", head)[0] if len(head) == 8 else -1
            try:
                header = json.loads(fh.read(n)) if 0 <= n <= size - 8 else None
                end = max((int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"), default=0)
            except (ValueError, KeyError, TypeError, AttributeError):
                header = None
        if header is None:
            return f"{f.name} has no readable safetensors header"
        if size != 8 + n + end:
            return f"{f.name} has {size} bytes, its header says {8 + n + end}"
    return None


def intact_checkpoint(run: str | Path) -> tuple[Path | None, list[tuple[Path, str]]]:
    """The newest checkpoint `checkpoint_damage` finds intact (None: none is), and the damaged newer ones
    with their reasons, newest first."""
    damaged: list[tuple[Path, str]] = []
    for path in reversed(checkpoint_dirs(run)):
        reason = checkpoint_damage(path)
        if reason is None:
            return path, damaged
        damaged.append((path, reason))
    return None, damaged


def set_aside(path: Path) -> Path:
    """Rename a damaged checkpoint folder to `<name>.damaged` (replacing an earlier one of that name): it is
    no longer listed by `checkpoint_dirs`, so it is neither resumed from nor counted among the kept ones."""
    aside = path.with_name(path.name + ".damaged")
    shutil.rmtree(aside, ignore_errors=True)
    os.replace(path, aside)
    return aside


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
    _write_manifest(tmp)  # last: it lists every file above


def load_checkpoint(
    path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, device: torch.device
) -> tuple[dict[str, Any], dict[str, torch.Tensor] | None]:
    """Restore weights and optimizer in place; returns (state.json contents, EMA tensors or None)."""
    damage = checkpoint_damage(path, full=False)
    if damage:
        raise ValueError(f"{path}: damaged checkpoint ({damage}); resume from an intact one (`sdvideo train "
                         "--resume` picks the newest) or delete this folder")
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
