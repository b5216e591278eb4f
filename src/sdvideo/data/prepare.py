"""`prepare`: videos -> frames at a fixed fps and size -> VAE latents + caption embeddings on disk.

See `sdvideo.data.cache` for the layout. A bad video is skipped with a one-line warning; the cache
index is rewritten after every video, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from sdvideo.data import cache
from sdvideo.data.video_io import VideoError, VideoReader

VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv", ".webm", ".avi", ".gif")
_TEXT_BATCH = 64


@dataclass
class PrepareSummary:
    used: int  # videos in the cache after this run (encoded now or by an earlier run)
    skipped: list[tuple[str, str]]  # (path, reason) of the videos skipped by this run
    frames: int  # frames (= latent frames) in the cache
    seconds: float  # seconds of video in the cache (frames / fps)
    out: Path = Path(".")
    encoded: int = 0  # videos encoded by this run (the rest were already in the cache)
    names: list[str] = field(default_factory=list)  # cache names of the used videos


def find_videos(inputs: Sequence[str | Path]) -> list[Path]:
    """Files as given (in order) and, for directories, every video below them (sorted)."""
    found: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found += sorted(f for f in p.rglob("*")
                            if f.is_file() and f.suffix.lower() in VIDEO_EXTENSIONS)
        else:
            found.append(p)  # missing or odd files are reported as skipped later
    unique: dict[Path, None] = {}
    for f in found:
        unique.setdefault(f.resolve(), None)
    return list(unique)


def read_captions(video: Path, default: str = "") -> list[str]:
    """Captions of a video: its sidecar `<stem>.txt` or `<name>.txt` (UTF-8, one caption per
    non-empty line) when present, else [`default`]."""
    for side in (video.with_suffix(".txt"), video.with_name(video.name + ".txt")):
        if side.is_file():
            lines = [ln.strip() for ln in side.read_text(encoding="utf-8").splitlines()]
            return [ln for ln in lines if ln] or [""]
    return [default.strip()]


def video_name(path: Path) -> str:
    """Unique cache name: the file stem (safe characters) + 8 hex digits of the absolute path."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", path.stem)[:60] or "video"
    return f"{stem}-{hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:8]}"


@torch.no_grad()
def encode_frames(vae: Any, frames: np.ndarray, device: torch.device, dtype: torch.dtype,
                  scaling_factor: float) -> torch.Tensor:
    """uint8 (B, S, S, 3) frames -> float16 CPU latents (B, C, S/f, S/f).

    Uses the posterior mean, not a sample, so the cache is deterministic (and a resumed run
    matches an uninterrupted one); training adds its own noise anyway.
    """
    x = torch.from_numpy(frames).to(device).permute(0, 3, 1, 2)  # (B, 3, S, S) uint8
    x = x.to(dtype) / 127.5 - 1.0  # [-1, 1]
    mean = vae.encode(x).latent_dist.mean  # (B, C, h, w)
    return (mean.float() * scaling_factor).to(torch.float16).cpu()


def _batches(reader: VideoReader, n: int) -> Iterator[np.ndarray]:
    """Frames of `reader` in uint8 batches (<= n, S, S, 3)."""
    batch: list[np.ndarray] = []
    for frame in reader:
        batch.append(frame)
        if len(batch) == n:
            yield np.stack(batch)
            batch = []
    if batch:
        yield np.stack(batch)


class _DecodeFailed(Exception):
    pass


def _reason(exc: BaseException) -> str:
    """One line saying why a video failed to decode (without repeating its path)."""
    if isinstance(exc, VideoError):
        return exc.reason
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:200]


def _encode_video(path: Path, vae: Any, fps: float, size: int, batch_size: int,
                  device: torch.device, dtype: torch.dtype, scaling: float,
                  progress: bool) -> torch.Tensor:
    """float16 latents (T, C, h, w) of one video. Decoding errors come out as `_DecodeFailed`;
    encoder errors (out of memory, bugs) propagate and stop `prepare`."""
    try:
        reader = VideoReader(path, fps=fps, size=size)
        est = int(reader.duration * fps) or None
    except Exception as e:  # VideoError or anything PyAV raises
        raise _DecodeFailed(_reason(e)) from None
    chunks = []
    bar = tqdm(total=est, desc=path.name[:30], unit="frame", leave=False, disable=not progress)
    with reader, bar:
        batches = _batches(reader, batch_size)
        while True:
            try:
                frames = next(batches, None)
            except Exception as e:
                raise _DecodeFailed(_reason(e)) from None
            if frames is None:
                break
            chunks.append(encode_frames(vae, frames, device, dtype, scaling))
            bar.update(len(frames))
    if not chunks:
        raise _DecodeFailed("no decodable video frames")
    return torch.cat(chunks)  # (T, C, h, w)


def _check_settings(out: Path, info: dict[str, Any], want: dict[str, Any]) -> None:
    diffs = [f"{k}={info.get(k)!r} (now {v!r})" for k, v in want.items() if info.get(k) != v]
    if diffs:
        short = "; ".join(d if len(d) < 120 else d[:117] + "..." for d in diffs)
        raise ValueError(f"{out} already holds a cache made with other settings: {short}; "
                         "use a new --out or --overwrite")


def prepare(videos: Sequence[str | Path], out: str | Path, base: Any, *, fps: float = 10.0,
            size: int = 512, caption: str = "", batch_size: int = 8,
            device: str | torch.device | None = None, dtype: torch.dtype | None = None,
            progress: bool = True, overwrite: bool = False) -> PrepareSummary:
    """Cache VAE latents and caption embeddings of `videos` (files or folders) in `out`.

    Videos already in the cache are not encoded again; the cache keeps earlier runs' videos too.
    The summary counts the whole cache (`used`, `frames`, `seconds`) and this run (`skipped`,
    `encoded`).

    Moves `base.vae` to `device` (default cuda if available) and, if given, `dtype`; captions are
    encoded wherever `base.text_encoder` is. Returns counts; the caller picks the exit status.
    """
    out = Path(out)
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    vae = base.vae.to(device=device, **({"dtype": dtype} if dtype is not None else {})).eval()
    dtype = dtype or next(vae.parameters()).dtype
    cfg = vae.config
    scaling = float(cfg.scaling_factor)
    factor = 2 ** (len(cfg.block_out_channels) - 1)
    if size % factor:
        raise ValueError(f"size {size} must be a multiple of {factor} (the VAE's downsampling)")
    settings = dict(version=cache.CACHE_VERSION, fps=float(fps), size=int(size),
                    scaling_factor=scaling, base=cache.jsonable(base.identity()))
    latent_shape = [int(cfg.latent_channels), size // factor, size // factor]

    index = out / cache.INDEX_FILE
    old = _open_cache(out, settings, overwrite)
    sources = find_videos(videos)
    video_caps = {src: read_captions(src, caption) for src in sources}
    # Caption list: the cache's (index 0 is "") + this run's new ones, so indices stay stable.
    captions = list(dict.fromkeys(old["captions"] + [c for cs in video_caps.values() for c in cs]))
    _write_text_embeddings(out, base, old["captions"], captions)
    cap_index = {c: i for i, c in enumerate(captions)}

    # The cache accumulates: entries whose latents file exists are kept (also those of videos not
    # passed this time; start afresh with overwrite=True). Keyed by absolute source path.
    done = {v["source"]: v for v in old["videos"] if cache.latents_file(out, v).is_file()}
    skipped = {s["source"]: s["reason"] for s in old["skipped"]}

    def write_index() -> None:
        for src in sources:
            if str(src) in done:
                done[str(src)]["captions"] = sorted({cap_index[c] for c in video_caps[src]})
        info = dict(settings, latent_shape=latent_shape, captions=captions,
                    videos=list(done.values()),
                    skipped=[dict(source=s, reason=r) for s, r in skipped.items() if s not in done])
        cache.write_json(index, info)

    write_index()
    run_skipped: list[tuple[str, str]] = []
    encoded = 0
    bar = tqdm(sources, desc="prepare", unit="video", disable=not progress)
    for src in bar:
        if str(src) in done:
            continue
        try:
            latents = _encode_video(src, vae, fps, size, batch_size, device, dtype, scaling,
                                    progress)  # (T, C, h, w) float16
        except _DecodeFailed as e:
            tqdm.write(f"warning: skipping {src}: {e}", file=sys.stderr)
            skipped[str(src)] = str(e)
            run_skipped.append((str(src), str(e)))
            write_index()
            continue
        name = video_name(src)
        file = f"{cache.LATENTS_DIR}/{name}.safetensors"
        cache.save_tensors(out / file, {cache.LATENTS_KEY: latents},
                           metadata={"source": str(src), "fps": str(float(fps))})
        done[str(src)] = dict(name=name, source=str(src), frames=int(latents.shape[0]),
                              fps=float(fps), file=file, captions=[])
        encoded += 1
        write_index()
        bar.set_postfix(frames=sum(v["frames"] for v in done.values()))
    bar.close()

    # Latents files the index does not list (a crash between writing one and the index).
    listed = {Path(v["file"]).name for v in done.values()}
    for f in (out / cache.LATENTS_DIR).iterdir():
        if f.name not in listed:
            f.unlink()
    frames = sum(v["frames"] for v in done.values())
    return PrepareSummary(used=len(done), skipped=run_skipped, frames=frames, seconds=frames / fps,
                          out=out, encoded=encoded, names=[v["name"] for v in done.values()])


def _open_cache(out: Path, settings: dict[str, Any], overwrite: bool) -> dict[str, Any]:
    """The existing index of `out` (checked against `settings`), or an empty one."""
    index = out / cache.INDEX_FILE
    if overwrite:
        for p in (index, out / cache.TEXT_FILE):
            p.unlink(missing_ok=True)
        shutil.rmtree(out / cache.LATENTS_DIR, ignore_errors=True)
    old: dict[str, Any] = {"videos": [], "captions": [""], "skipped": []}
    if index.exists():
        old = cache.load_cache_info(out)
        _check_settings(out, old, settings)
    (out / cache.LATENTS_DIR).mkdir(parents=True, exist_ok=True)
    return dict(videos=old["videos"], captions=old["captions"] or [""],
                skipped=old.get("skipped", []))


def _write_text_embeddings(out: Path, base: Any, old_captions: list[str],
                           captions: list[str]) -> None:
    """Write text.safetensors for `captions`, reusing the rows already cached for old ones."""
    rows: dict[str, torch.Tensor] = {}
    if (out / cache.TEXT_FILE).is_file():
        rows = dict(zip(old_captions, cache.load_text_embeddings(out)))  # each (77, dim)
    new = [c for c in captions if c not in rows]
    with torch.no_grad():
        for i in range(0, len(new), _TEXT_BATCH):
            emb = base.encode_text(new[i : i + _TEXT_BATCH])  # (n, 77, dim) on the encoder's device
            rows.update(zip(new[i : i + _TEXT_BATCH], emb.float().cpu()))
    text = torch.stack([rows[c] for c in captions]).to(torch.float16)  # (N, 77, dim)
    cache.save_tensors(out / cache.TEXT_FILE, {cache.TEXT_KEY: text})
