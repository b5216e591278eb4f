"""Read a flat dict of tensors from a `.safetensors` or a torch `.ckpt`/`.pt`/`.pth` file, never unpickling code.

Torch files are read with `torch.load(weights_only=True)`, whose unpickler rebuilds tensors and plain containers
only. Every failure is one line naming the file, raised as the caller's error type.
"""

from __future__ import annotations

from pathlib import Path

import torch

Tensors = dict[str, torch.Tensor]
TORCH_SUFFIXES = (".ckpt", ".pt", ".pth")


def read_tensor_file(path: str | Path, expected: str, error: type[Exception] = ValueError) -> Tensors:
    """The tensors of `path` (a checkpoint's "state_dict" entry when it has one). `expected` completes the
    messages ("expected an SD .ckpt or .safetensors checkpoint"); `error` is the exception raised."""
    from .base import one_line

    path = Path(path)
    suffix = path.suffix.lower()
    if path.is_file() and path.stat().st_size == 0:
        raise error(f"{path}: is empty (0 bytes); {expected}")
    if suffix != ".safetensors" and suffix not in TORCH_SUFFIXES:
        raise error(f"{path}: unknown file type {suffix!r}; {expected}")
    try:
        if suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
            if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
                state = state["state_dict"]
    except Exception as exc:  # noqa: BLE001 - safetensors / unpickling errors become one line
        kind = "safetensors" if suffix == ".safetensors" else "PyTorch (weights-only)"
        raise error(f"{path}: cannot be read as a {kind} file, truncated or corrupt? ({one_line(exc)})") from exc
    if not isinstance(state, dict):
        raise error(f"{path}: holds a {type(state).__name__}, not a dict of tensors; {expected}")
    return {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
