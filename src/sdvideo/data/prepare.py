"""`prepare`: videos -> frames at a fixed fps and size -> VAE latents + caption embeddings on disk.

Pipeline: `sources.collect_jobs` (files, folders, globs, manifests, captions) -> caption embeddings
(once per distinct caption) -> `decode_pool.decode_ahead` (worker threads decode, resample, crop and
detect scene cuts in the next videos) -> `encoder.FrameEncoder` (VAE batches on the GPU in fp16 when
present) -> `shards.ShardWriter` + `journal.Journal` (a video is committed once its latents are on
disk). See `cache.py` for the layout.

Bad input never stops the run: a file that cannot be decoded, has no video, or is shorter than one
clip is skipped with a one-line warning naming it; the summary counts what the cache holds. Killing
`prepare` at any moment and running it again finishes the job: committed videos are kept (never
re-encoded) and the bytes of the interrupted one are discarded. Two runs on one cache are refused.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import sys
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from sdvideo.atomic_files import _restore_aside
from sdvideo.checks import check_int, check_number, check_out_folder
from sdvideo.choices import PREPARE_BATCH_SIZE
from sdvideo.data import cache
from sdvideo.data.decode_pool import DecodeFailed, decode_ahead
from sdvideo.data.encoder import FrameEncoder, encode_frames, pick_device
from sdvideo.data.journal import JOURNAL_FILE, Journal
from sdvideo.data.scenes import DEFAULT_SCENE_THRESHOLD, segments_from_cuts
from sdvideo.data.shards import LATENTS_DIR, ShardWriter
from sdvideo.data.sources import VIDEO_EXTENSIONS, VideoJob, check_inputs, collect_jobs
from sdvideo.run_lock import exclusive

__all__ = ["prepare", "check_prepare_options", "PrepareSummary", "count_clips", "VIDEO_EXTENSIONS", "encode_frames"]
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
    clips: int = 0  # clips of `clip_frames` consecutive frames within one shot, in the cache
    clip_frames: int = 5
    warnings: list[str] = field(default_factory=list)  # every warning line of this run

    @property
    def hours(self) -> float:
        return self.seconds / 3600

    def line(self) -> str:
        """The end-of-run summary, one line."""
        return (f"prepared {self.out}: {self.used} videos used ({self.encoded} new), "
                f"{len(self.skipped)} skipped, {self.frames} frames, {self.clips} clips of "
                f"{self.clip_frames} frames, {self.hours:.2f} h")


def count_clips(videos: Sequence[dict[str, Any]], clip_frames: int) -> int:
    """Clips of `clip_frames` consecutive frames inside one shot, over cache entries."""
    return sum(max(0, b - a - clip_frames + 1) for v in videos for a, b in cache.shots(v))


def check_prepare_options(videos: Sequence[str | Path], out: str | Path, *, fps: float = 10.0, size: int = 512,
                          batch_size: int = PREPARE_BATCH_SIZE, scene_threshold: float = DEFAULT_SCENE_THRESHOLD,
                          clip_frames: int = 5, workers: int = 4, shard_mb: float = 1024) -> None:
    """`prepare`'s options, --out and inputs (symbolic link loops, malformed manifests), checked before the
    base model loads: one-line ValueErrors naming the option or file. `sdvideo prepare` runs it first too."""
    check_number("--fps", fps, above=0, hint=" (frames per second, e.g. 10)")
    check_int("--size", size, 1, hint=" (pixels, a multiple of the VAE's 8, e.g. 512)")
    check_int("--batch-size", batch_size, 1)
    check_int("--clip-frames", clip_frames, 1)
    check_int("--workers", workers, 0)
    check_number("--scene-threshold", scene_threshold, at_least=0, hint=" (0 disables cut detection)")
    check_number("--shard-mb", shard_mb, above=0)
    check_out_folder(out)
    check_inputs(videos)


def prepare(videos: Sequence[str | Path], out: str | Path, base: Any, *, fps: float = 10.0,
            size: int = 512, caption: str = "", batch_size: int = PREPARE_BATCH_SIZE,
            device: str | torch.device | None = None, dtype: torch.dtype | None = None,
            progress: bool = True, overwrite: bool = False,
            scene_threshold: float = DEFAULT_SCENE_THRESHOLD, clip_frames: int = 5,
            workers: int = 4, shard_mb: float = 1024) -> PrepareSummary:
    """Cache VAE latents and caption embeddings of `videos` (files, folders, globs, manifests) in `out`.

    fps, size: resample to `fps` by timestamps, resize the short side to `size` and center-crop.
    caption: for videos without a manifest caption or sidecar .txt.
    batch_size: frames per VAE batch. device/dtype: default cuda + float16 when available, else cpu
      + float32 (the VAE is put back where it was afterwards).
    scene_threshold: scene-cut detector threshold (`scenes.py`; 0 disables); clips never span a cut.
    clip_frames: videos shorter than this are skipped; the summary counts clips of this length.
    workers: videos decoded in parallel ahead of the encoder. shard_mb: latent shard size.
    overwrite: start afresh (needed to change fps, size, base or scene_threshold of a cache).

    Videos already in the cache are not encoded again; the cache keeps earlier runs' videos too.
    The summary counts the whole cache (used, frames, clips, hours) and this run (skipped, encoded).
    """
    check_prepare_options(videos, out, fps=fps, size=size, batch_size=batch_size, scene_threshold=scene_threshold,
                          clip_frames=clip_frames, workers=workers, shard_mb=shard_mb)
    out = Path(out)
    _restore_aside(out, out.with_name(out.name + ".old"))  # a kill in the middle of an --overwrite swap
    device, dtype = pick_device(device, dtype)
    cfg = base.vae.config
    factor = 2 ** (len(cfg.block_out_channels) - 1)
    if size % factor:
        raise ValueError(f"size {size} must be a multiple of {factor} (the VAE's downsampling)")
    settings = dict(version=cache.CACHE_VERSION, fps=float(fps), size=int(size),
                    scaling_factor=float(cfg.scaling_factor), scene_threshold=float(scene_threshold),
                    base=cache.jsonable(base.identity()))
    if overwrite and (out / cache.INDEX_FILE).exists():
        options = dict(fps=fps, size=size, caption=caption, batch_size=batch_size, device=device, dtype=dtype,
                       progress=progress, scene_threshold=scene_threshold, clip_frames=clip_frames,
                       workers=workers, shard_mb=shard_mb)
        return _overwrite_beside(videos, out, base, settings, options)
    latent_shape = [int(cfg.latent_channels), size // factor, size // factor]
    warnings: list[str] = []

    def warn(message: str) -> None:
        warnings.append(message)
        tqdm.write(message, file=sys.stderr)

    out.mkdir(parents=True, exist_ok=True)
    with exclusive(out, "sdvideo prepare"):
        old_captions = _open_cache(out, settings, overwrite)
        jobs = collect_jobs(videos, caption, warn)
        captions = list(dict.fromkeys(old_captions + [c for j in jobs for c in j.captions]))
        _write_text_embeddings(out, base, device, len(old_captions), captions)
        cache.write_json(out / cache.INDEX_FILE, dict(settings, base_source=str(getattr(base, "source", "")),
                                                      latent_shape=latent_shape, captions=captions))
        cap_index = {c: i for i, c in enumerate(captions)}
        journal = Journal(out / JOURNAL_FILE)
        try:
            skipped, encoded = _encode_all(out, jobs, journal, cap_index, base, device, dtype,
                                           latent_shape, fps, size, batch_size, scene_threshold,
                                           clip_frames, workers, shard_mb, progress, warn)
            journal.compact()
        finally:
            journal.close()
    done = [r for r in journal.records.values() if "skipped" not in r]
    frames = sum(int(v["frames"]) for v in done)
    return PrepareSummary(used=len(done), skipped=skipped, frames=frames, seconds=frames / fps, out=out,
                          encoded=encoded, names=[v["name"] for v in done],
                          clips=count_clips(done, clip_frames),
                          clip_frames=clip_frames, warnings=warnings)


def _encode_all(out: Path, jobs: list[VideoJob], journal: Journal, cap_index: dict[str, int], base: Any,
                device: torch.device, dtype: torch.dtype, latent_shape: list[int], fps: float, size: int,
                batch_size: int, scene_threshold: float, clip_frames: int, workers: int,
                shard_mb: float, progress: bool, warn: Any) -> tuple[list[tuple[str, str]], int]:
    """Encode every job not yet in the journal; returns (this run's skips, videos encoded)."""
    done = {k: r for k, r in journal.records.items() if "skipped" not in r}
    committed: dict[str, int] = {}  # shard -> bytes used by committed videos
    for r in done.values():
        committed[r["shard"]] = max(committed.get(r["shard"], 0), int(r["offset"]) + int(r["nbytes"]))
    for job in jobs:  # captions of a cached video may have changed (edited sidecar): update them
        ids = sorted({cap_index[c] for c in job.captions})
        if job.key in done and done[job.key].get("captions") != ids:
            journal.append(dict(done[job.key], captions=ids))
    todo = [j for j in jobs if j.key not in done]
    skipped: list[tuple[str, str]] = []
    encoded = 0
    writer = ShardWriter(out, committed, int(shard_mb * (1 << 20)))
    encoder = FrameEncoder(base.vae, device, dtype)
    dec_bar = tqdm(desc="decode", unit="frame", position=0, disable=not progress, dynamic_ncols=True)
    enc_bar = tqdm(total=len(todo), desc="encode", unit="video", position=1, disable=not progress,
                   dynamic_ncols=True)
    bar_lock = threading.Lock()
    enc_frames = 0

    def decoded(n: int) -> None:  # called from decoder threads
        with bar_lock:
            dec_bar.update(n)

    try:
        for job, stream in decode_ahead(todo, fps=fps, size=size, batch_size=batch_size,
                                        scene_threshold=scene_threshold, workers=workers,
                                        on_frames=decoded):
            writer.begin()
            try:
                for frames in stream:  # uint8 (n, S, S, 3)
                    writer.write(encoder(frames).numpy())  # float16 (n, C, h, w)
                    enc_frames += len(frames)
                    with bar_lock:
                        enc_bar.set_postfix(frames=enc_frames, refresh=False)
                result = stream.result
                if result.frames == 0:
                    raise DecodeFailed("no decodable video frames"
                                       + (" in the requested time window" if job.start or job.end else ""))
                if result.frames < clip_frames:
                    raise DecodeFailed(f"only {result.frames} frames at {fps:g} fps, shorter than one clip "
                                       f"of {clip_frames} frames; use a longer video or lower --clip-frames")
            except DecodeFailed as e:
                writer.rollback()
                warn(f"warning: skipping {job.label}: {e}")
                journal.append(dict(key=job.key, source=job.label, skipped=str(e)))
                skipped.append((job.label, str(e)))
                enc_bar.update(1)
                continue
            location = writer.commit()  # latents durable on disk before the journal lists them
            journal.append(dict(
                key=job.key, name=job.name, source=str(job.path), start=job.start, end=job.end,
                frames=result.frames, fps=float(fps), duration=round(result.frames / fps, 6),
                **location, shape=[result.frames, *latent_shape],
                segments=segments_from_cuts(result.cuts, result.frames),
                captions=sorted({cap_index[c] for c in job.captions})))
            encoded += 1
            enc_bar.update(1)
    finally:
        encoder.close()
        writer.close()
        dec_bar.close()
        enc_bar.close()
    if encoder.fallbacks:
        warn(f"warning: {encoder.fallbacks} batches overflowed in {dtype} and were encoded in float32")
    return skipped, encoded


def _overwrite_beside(videos: Sequence[str | Path], out: Path, base: Any, settings: dict[str, Any],
                      options: dict[str, Any]) -> PrepareSummary:
    """`--overwrite` of an existing cache: the new one is built beside it, in `OUT.overwrite/`, and replaces
    `OUT` only once it holds at least one video; otherwise `OUT` stays as it was (a mistyped glob, or inputs
    that all fail to decode, cannot wipe a finished cache). An interrupted overwrite resumes in the same
    folder when run again with the same settings."""
    staging = out.with_name(out.name + ".overwrite")
    with exclusive(out, "sdvideo prepare"):
        if (staging / cache.INDEX_FILE).exists() and _settings_diffs(staging, settings):
            shutil.rmtree(staging)  # left by an overwrite with other settings: start it again
        summary = prepare(videos, staging, base, overwrite=False, **options)
        if summary.used == 0:
            shutil.rmtree(staging, ignore_errors=True)
            raise ValueError(f"{out}: none of the inputs gave a usable video ({len(summary.skipped)} skipped), so "
                             "the cache there was kept as it was; check the paths or globs and run it again")
        aside = out.with_name(out.name + ".old")
        os.replace(out, aside)  # at every moment OUT or OUT.old holds a whole cache (see _restore_aside)
        os.replace(staging, out)
        shutil.rmtree(aside, ignore_errors=True)
    return dataclasses.replace(summary, out=out)


def _settings_diffs(out: Path, settings: dict[str, Any]) -> list[str]:
    """How the cache in `out` was made differently from `settings` (empty: the same)."""
    info = cache.load_cache_info(out)
    diffs = [f"{k}={info.get(k)!r} (now {v!r})" for k, v in settings.items()
             if k != "base" and info.get(k) != v]
    reason = cache.cache_mismatch(info.get("base") or {}, settings["base"])
    if reason:
        diffs.append(f"base model: {reason}")
    return diffs


def _open_cache(out: Path, settings: dict[str, Any], overwrite: bool) -> list[str]:
    """Captions of the cache in `out` after checking its settings (or [""] for a new cache)."""
    index = out / cache.INDEX_FILE
    if overwrite:  # a folder with no finished cache index (an existing cache is overwritten beside it)
        for name in (cache.INDEX_FILE, cache.TEXT_FILE, JOURNAL_FILE):
            (out / name).unlink(missing_ok=True)
        shutil.rmtree(out / LATENTS_DIR, ignore_errors=True)
    if not index.exists():
        return [""]
    diffs = _settings_diffs(out, settings)
    if diffs:
        raise ValueError(f"{out} already holds a cache made with other settings: {'; '.join(diffs)}; "
                         "use a new --out or --overwrite")
    info = cache.load_cache_info(out)
    return list(info["captions"]) or [""]


def _write_text_embeddings(out: Path, base: Any, device: torch.device, old: int, captions: list[str]) -> None:
    """text.safetensors for `captions`: the first `old` rows are copied from the existing file, the
    rest encoded (on `device`, in batches); streamed so that no more than a batch is in memory."""
    reuse = min(old, cache.text_rows(out))
    if reuse == len(captions) == cache.text_rows(out):
        return
    encoder = base.text_encoder
    where = next(encoder.parameters()).device

    def chunks() -> Iterator[torch.Tensor]:
        for i in range(0, reuse, 1024):
            yield cache.load_text_rows(out, i, min(reuse, i + 1024))  # (n, 77, dim)
        encoder.to(device)
        try:
            with torch.inference_mode():
                for i in range(reuse, len(captions), _TEXT_BATCH):
                    yield base.encode_text(captions[i : i + _TEXT_BATCH]).float().cpu()  # (n, 77, dim)
        finally:
            encoder.to(where)

    cache.write_text_embeddings(out / cache.TEXT_FILE, chunks(), len(captions))
