"""The on-disk latent cache written by `prepare` and read by `ClipDataset` (layout version 2).

    CACHE/cache.json         what made the cache (below); rewritten atomically at the start of a run
    CACHE/text.safetensors   "embeddings": float16 (num_captions, 77, dim); row 0 = caption ""
    CACHE/videos.jsonl       the journal: one line per cached (or skipped) video, see journal.py
    CACHE/latents/shard-NNNNN.bin
                             raw float16 latents (T, C, h, w) of several videos back to back,
                             = VAE posterior mean * scaling_factor, see shards.py

cache.json: {"version": 2, "fps", "size", "scaling_factor", "scene_threshold",
             "latent_shape": [C, h, w], "base": base.identity(), "base_source": str,
             "captions": [str, ...]}
a journal video line: {"key", "name", "source", "start", "end", "frames", "fps", "duration",
             "shard", "offset", "nbytes", "crc32", "shape": [T, C, h, w],
             "segments": [[start, end), ...] shots in frame indices, "captions": [caption ids]}
a journal skip line:  {"key", "source", "skipped": reason}

`load_cache_info` returns cache.json plus "videos" and "skipped" lists from the journal. Version 1
caches (one safetensors file per video) are refused with a message to rerun prepare.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open

from sdvideo.atomic_files import atomic_path
from sdvideo.data.journal import JOURNAL_FILE, read_journal
from sdvideo.data.shards import LATENTS_DIR, ShardReader, verify_entry

CACHE_VERSION = 2
INDEX_FILE = "cache.json"
TEXT_FILE = "text.safetensors"
TEXT_KEY = "embeddings"
__all__ = ["CACHE_VERSION", "INDEX_FILE", "TEXT_FILE", "JOURNAL_FILE", "LATENTS_DIR", "load_cache_info",
           "check_cache_matches", "check_cache_matches_identity", "empty_text_embedding",
           "load_text_embeddings", "load_video_latents", "verify_cache"]


def write_json(path: str | Path, data: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def jsonable(obj: Any) -> Any:
    """`obj` as it reads back from JSON (tuples -> lists, other objects -> str): comparable."""
    return json.loads(json.dumps(obj, default=str))


def load_cache_info(cache_dir: str | Path) -> dict[str, Any]:
    """cache.json + the journal's "videos" and "skipped"; a one-line error when it is not a cache."""
    cache_dir = Path(cache_dir)
    index = cache_dir / INDEX_FILE
    if not index.is_file():
        raise FileNotFoundError(f"{cache_dir} is not a latent cache (no {INDEX_FILE}); "
                                "make one with `sdvideo prepare VIDEOS --out DIR`")
    try:
        info = json.loads(index.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{index} is not valid JSON ({e}); rerun prepare with --overwrite") from None
    if not isinstance(info, dict) or "captions" not in info:
        raise ValueError(f"{index} is not a latent cache index; rerun prepare with --overwrite")
    if info.get("version") != CACHE_VERSION:
        raise ValueError(f"{index} has cache version {info.get('version')!r} (an older sdvideo's layout), "
                         f"this sdvideo reads version {CACHE_VERSION}; rerun prepare with --overwrite "
                         "or a new --out")
    records, _ = read_journal(cache_dir / JOURNAL_FILE)
    info["videos"] = [r for r in records.values() if "skipped" not in r]
    info["skipped"] = [dict(source=r["source"], reason=r["skipped"]) for r in records.values()
                       if "skipped" in r]
    return info


def shots(video: dict[str, Any]) -> list[list[int]]:
    """A cache entry's shots as [start, stop) frame ranges: its scene segments, or the whole video."""
    return video.get("segments") or [[0, video["frames"]]]


def load_video_latents(cache_dir: str | Path, video: dict[str, Any]) -> torch.Tensor:
    """One cached video's latents (entry of info["videos"]): float16 (T, C, h, w), a copy."""
    return torch.from_numpy(np.array(ShardReader(cache_dir).video(video)))


def verify_cache(cache_dir: str | Path) -> list[str]:
    """Check every cached video's bytes against its crc32; returns one line per problem (none: [])."""
    info, reader = load_cache_info(cache_dir), ShardReader(cache_dir)
    problems = []
    for v in info["videos"]:
        try:
            reason = verify_entry(reader, v)
        except (OSError, ValueError) as e:
            reason = str(e)
        if reason:
            problems.append(f"{v['source']}: {reason}")
    return problems


# ---- caption embeddings -------------------------------------------------------------------------

def write_text_embeddings(path: str | Path, chunks: Iterable[torch.Tensor], rows: int) -> None:
    """Stream (n, 77, dim) chunks (`rows` rows in all) into a float16 safetensors file, atomically,
    without holding all rows in memory (the safetensors header only needs the final shape)."""
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        header_at = 0
        written, shape = 0, None
        for chunk in chunks:
            chunk = chunk.detach().to("cpu", torch.float16).contiguous()
            if shape is None:
                shape = [rows, *chunk.shape[1:]]
                nbytes = 2 * int(np.prod(shape))
                header = {TEXT_KEY: {"dtype": "F16", "shape": shape, "data_offsets": [0, nbytes]}}
                blob = json.dumps(header, separators=(",", ":")).encode()
                blob += b" " * (-len(blob) % 8)  # data starts 8-byte aligned
                f.write(struct.pack("<Q", len(blob)) + blob)
                header_at = f.tell()
            f.write(chunk.numpy().tobytes())
            written += chunk.shape[0]
        if shape is None or written != rows or f.tell() - header_at != nbytes:
            raise RuntimeError(f"{path}: wrote {written} caption rows, expected {rows}")


def text_rows(cache_dir: str | Path) -> int:
    path = Path(cache_dir) / TEXT_FILE
    if not path.is_file():
        return 0
    with safe_open(str(path), framework="pt") as f:
        return int(f.get_slice(TEXT_KEY).get_shape()[0])


def load_text_rows(cache_dir: str | Path, start: int, stop: int) -> torch.Tensor:
    """Caption embeddings start..stop-1: float32 (n, 77, dim)."""
    path = Path(cache_dir) / TEXT_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; rerun prepare for this cache")
    with safe_open(str(path), framework="pt") as f:
        return f.get_slice(TEXT_KEY)[start:stop].float()


def load_text_embeddings(cache_dir: str | Path) -> torch.Tensor:
    """All caption embeddings: float32 (num_captions, 77, dim); row 0 is the empty caption."""
    return load_text_rows(cache_dir, 0, max(1, text_rows(cache_dir)))


def empty_text_embedding(cache_dir: str | Path) -> torch.Tensor:
    """The empty caption's embedding (for classifier-free guidance): float32 (77, dim)."""
    return load_text_rows(cache_dir, 0, 1)[0]


# ---- does the cache belong to this base model? ---------------------------------------------------

def cache_mismatch(recorded: dict[str, Any], identity: dict[str, Any]) -> str | None:
    """Why latents/embeddings recorded with `recorded` (a `base.identity()`) do not fit a base whose
    identity is `identity`, in a few words; None when they fit."""
    rec, cur = jsonable(recorded or {}), jsonable(identity or {})
    for part, label in (("vae", "VAE"), ("text_encoder", "text encoder")):
        a, b = rec.get(part) or {}, cur.get(part) or {}
        if a == b:
            continue
        if a.get("class") != b.get("class"):
            return f"{label} differs (class {a.get('class')} vs {b.get('class')})"
        ca, cb = a.get("config") or {}, b.get("config") or {}
        keys = [k for k in sorted(set(ca) | set(cb)) if ca.get(k) != cb.get(k)]
        if keys:
            k = keys[0]
            return f"{label} differs ({k} {ca.get(k)!r} vs {cb.get(k)!r})"
        return f"{label} differs (weights fingerprint {a.get('fingerprint')} vs {b.get('fingerprint')})"
    if rec.get("scaling_factor") != cur.get("scaling_factor"):
        return f"scaling factor differs ({rec.get('scaling_factor')} vs {cur.get('scaling_factor')})"
    return None


def check_cache_matches_identity(info: dict[str, Any], identity: dict[str, Any],
                                 where: str = "cache") -> None:
    """Raise a one-line ValueError when the cache `info` was not made with a base of `identity`."""
    reason = cache_mismatch(info.get("base") or {}, identity)
    if reason:
        made = info.get("base_source")
        raise ValueError(f"{where} was prepared with another base model: {reason}"
                         + (f" (cache made from {made})" if made else "")
                         + "; pass the --base the cache was made with, or rerun `sdvideo prepare` "
                         "with this --base into a new --out")


def check_cache_matches(cache_dir: str | Path, base: Any) -> None:
    """Raise a one-line ValueError unless `cache_dir` was prepared with `base`'s VAE, text encoder
    and scaling factor (compares `base.identity()` with the identity recorded by prepare)."""
    check_cache_matches_identity(load_cache_info(cache_dir), base.identity(), str(cache_dir))
