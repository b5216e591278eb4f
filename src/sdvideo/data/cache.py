"""The on-disk latent cache written by `prepare` and read by `ClipDataset` (layout version 1).

    CACHE/cache.json            index (below), rewritten atomically after every video
    CACHE/text.safetensors      "embeddings": float16 (num_captions, 77, dim); row 0 = caption ""
    CACHE/latents/<name>.safetensors
                                "latents": float16 (T, C, h, w) = VAE posterior mean * scaling_factor

cache.json: {"version": 1, "fps": float, "size": int, "scaling_factor": float,
             "latent_shape": [C, h, w], "base": base.identity(), "captions": [str, ...],
             "videos": [{"name", "source", "frames", "fps", "file", "captions": [int, ...]}],
             "skipped": [{"source", "reason"}]}

Every file is written to `<file>.tmp` and moved into place with `os.replace`, so an interrupted
`prepare` leaves a consistent cache that a rerun continues.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

CACHE_VERSION = 1
INDEX_FILE = "cache.json"
TEXT_FILE = "text.safetensors"
LATENTS_DIR = "latents"
LATENTS_KEY = "latents"
TEXT_KEY = "embeddings"


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield `<path>.tmp` to write to; on success it replaces `path` (same folder, so atomic)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_json(path: str | Path, data: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def save_tensors(path: str | Path, tensors: dict[str, torch.Tensor],
                 metadata: dict[str, str] | None = None) -> None:
    with atomic_path(path) as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp),
                  metadata=metadata)


def jsonable(obj: Any) -> Any:
    """`obj` as it reads back from JSON (tuples -> lists, other objects -> str): comparable."""
    return json.loads(json.dumps(obj, default=str))


def load_cache_info(cache_dir: str | Path) -> dict[str, Any]:
    """Read and check `cache_dir/cache.json`; raises a one-line error when it is not a cache."""
    cache_dir = Path(cache_dir)
    index = cache_dir / INDEX_FILE
    if not index.is_file():
        raise FileNotFoundError(f"{cache_dir} is not a latent cache (no {INDEX_FILE}); "
                                "make one with `sdvideo prepare VIDEOS --out DIR`")
    try:
        info = json.loads(index.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{index} is not valid JSON ({e}); rerun prepare with --overwrite") from None
    if not isinstance(info, dict) or "videos" not in info or "captions" not in info:
        raise ValueError(f"{index} is not a latent cache index; rerun prepare with --overwrite")
    if info.get("version") != CACHE_VERSION:
        raise ValueError(f"{index} has cache version {info.get('version')!r}, this sdvideo reads "
                         f"version {CACHE_VERSION}; rerun prepare with --overwrite")
    return info


def latents_file(cache_dir: str | Path, video: dict[str, Any]) -> Path:
    """Path of one video's latents file (entry of cache.json "videos")."""
    return Path(cache_dir) / video["file"]


def load_text_embeddings(cache_dir: str | Path) -> torch.Tensor:
    """All caption embeddings: float32 (num_captions, 77, dim); row 0 is the empty caption."""
    path = Path(cache_dir) / TEXT_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; rerun prepare for this cache")
    with safe_open(str(path), framework="pt") as f:
        return f.get_tensor(TEXT_KEY).float()


def empty_text_embedding(cache_dir: str | Path) -> torch.Tensor:
    """The empty caption's embedding (for classifier-free guidance): float32 (77, dim)."""
    path = Path(cache_dir) / TEXT_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; rerun prepare for this cache")
    with safe_open(str(path), framework="pt") as f:
        return f.get_slice(TEXT_KEY)[0:1][0].float()
