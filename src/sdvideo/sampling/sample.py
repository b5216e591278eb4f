"""`sdvideo sample` / `sdvideo interpolate`: load a run, generate, write .mp4, .gif and a grid.

Modes of `sample`: text-to-video (optionally in sliding windows for long videos), `extend=VIDEO`
(continue a video from its last frames) and `image=IMG` (animate a still). `interpolate_video`
raises a video's frame rate k times. All go through `VideoPipeline`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ..checks import check_int, check_number, check_out_file, check_out_folder
from ..fast.cudnn_benchmark import benchmark_cudnn_algorithms
from ..data.video_io import decode_video, probe_video
from ..export.temporal import is_temporal_file
from .conditioning import check_factor, load_image, open_image
from .export import to_uint8_frames, write_mp4, write_videos
from .pipeline import VideoPipeline, load_video_unet, seed_generators
from .sampler import SCHEDULERS, adds_noise_per_step, make_scheduler

__all__ = ["SCHEDULERS", "interpolate_video", "load_video_unet", "make_scheduler", "read_prompts", "sample", "slug"]


def slug(text: str, limit: int = 48) -> str:
    return re.sub(r"[^a-zA-Z0-9]+", "-", text).strip("-").lower()[:limit] or "video"


def read_prompts(path: str | Path) -> list[str]:
    """One prompt per line; blank lines and lines starting with # are skipped."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such prompts file")
    prompts = [line.strip() for line in p.read_text().splitlines()]
    prompts = [s for s in prompts if s and not s.startswith("#")]
    if not prompts:
        raise ValueError(f"{p}: no prompts (one per line; # starts a comment)")
    return prompts


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def load_pipeline(run: str | Path, scheduler: str, device: str, progress: bool, compile: bool = False,
                  cuda_graphs: bool = True, base: str | Path | None = None) -> VideoPipeline:
    """A training run, a saved VideoPipeline folder or a file of `sdvideo export` (`.safetensors`: its temporal
    layers, put on `base`) on `device`, fp16 on CUDA, with every fast path for sampling on
    (`VideoPipeline.enable_fast_inference`, `sdvideo.fast`; eager or compiled).

    base: the Stable Diffusion for an exported file (required there); for a run folder, a copy of the run's base
    loaded instead of the path its config.json records (checked to be the same model); refused for a saved
    pipeline, which holds its own.

    compile: then `torch.compile` the UNet's repeated blocks, channels-last (`VideoUNet.compile_regions`):
    the benchmark's guided sampling loop (16 frames x 25 steps, bf16) spends far less UNet time than eager
    (BENCHMARKS.md), after minutes of compiling; worth it for several videos of one size.
    cuda_graphs: on CUDA, replay each denoising step's UNet call from a CUDA graph
    (`cuda_graphs.py`): same results, less launch overhead; it saves most on small frames and little at
    512 px (BENCHMARKS.md)."""
    dev = resolve_device(device)
    benchmark_cudnn_algorithms(dev)  # every denoising step has the same shapes
    dtype = torch.float16 if dev.type == "cuda" else torch.float32
    if is_temporal_file(run):
        pipe = VideoPipeline.from_temporal_file(run, base, scheduler, dev, dtype)
    elif (Path(run) / "model_index.json").is_file():
        if base is not None:
            raise ValueError(f"--base {base}: {run} is a saved pipeline, which holds its own base model; leave "
                             "--base out (it is for a run folder or a file from `sdvideo export`)")
        pipe = VideoPipeline.from_pretrained(run, dtype=dtype).to(dev)
        pipe.set_scheduler(scheduler)
    else:
        pipe = VideoPipeline.from_run(run, scheduler, dev, dtype, base=base)
    pipe.set_progress_bar_config(disable=not progress, leave=False, desc="denoise")
    pipe.enable_fast_inference()  # before compiling: the compiled regions keep the forms they were traced with
    if compile:
        pipe.unet.compile_regions()
    if cuda_graphs and dev.type == "cuda":
        pipe.enable_cuda_graphs()
    return pipe


def check_guidance_scale(guidance_scale: float) -> None:
    check_number("--guidance-scale", guidance_scale, at_least=0, hint=" (1: no guidance; e.g. 7.5)")


def check_sampling_extras(free_init: int | None, eta: float) -> None:
    """--free-init and --eta, as `sample` and `eval` take them."""
    check_int("--free-init", free_init, 1, optional=True, hint=" (samplings per video, e.g. 3; 1: off)")
    check_number("--eta", eta, at_least=0, hint=" (DDIM's fresh noise per step: 0 deterministic, 1 as much as DDPM)")


def check_sample_options(out: str | Path, *, frames: int = 8, steps: int = 25, guidance_scale: float = 7.5,
                         fps: float | None = None, size: int | None = None, height: int | None = None,
                         width: int | None = None, window: int | None = None, overlap: int | None = None,
                         context_frames: int | None = None, batch_size: int | None = None,
                         decode_chunk_size: int = 8, free_init: int | None = None, eta: float = 0.0) -> None:
    """`sample`'s numeric options and --out, checked before the model loads: one-line ValueErrors."""
    check_int("--frames", frames, 1)
    check_int("--steps", steps, 1)
    check_guidance_scale(guidance_scale)
    check_number("--fps", fps, above=0, optional=True, hint=" (frames per second; default: the training rate)")
    for option, value in (("--size", size), ("--height", height), ("--width", width), ("--window", window),
                          ("--context-frames", context_frames), ("--batch-size", batch_size)):
        check_int(option, value, 1, optional=True, hint=" (or leave it out for the default)")
    check_int("--overlap", overlap, 0, optional=True)
    check_int("--decode-chunk", decode_chunk_size, 1, hint=" (frames per VAE decode slice, e.g. 8)")
    check_sampling_extras(free_init, eta)
    check_out_folder(out)


def check_interpolate_options(out: str | Path, *, factor: int = 2, steps: int = 25, guidance_scale: float = 1.0,
                              input_fps: float | None = None, size: int | None = None, window: int | None = 16,
                              overlap: int | None = None) -> None:
    """`interpolate_video`'s numeric options and --out (an .mp4 file or a folder), checked before the model
    loads: one-line ValueErrors."""
    check_factor(factor)
    check_int("--steps", steps, 1)
    check_guidance_scale(guidance_scale)
    check_number("--fps", input_fps, above=0, optional=True, hint=" (the input's frame rate; default: its own)")
    check_int("--size", size, 1, optional=True, hint=" (or leave it out for the training size)")
    check_int("--window", window, 0, optional=True, hint=" (0: all frames at once)")
    check_int("--overlap", overlap, 0, optional=True)
    if Path(out).suffix.lower() == ".mp4":
        check_out_file(out)
    else:
        check_out_folder(out)


def sample(
    run: str | Path,
    prompts: Sequence[str],
    out: str | Path,
    frames: int = 8,
    steps: int = 25,
    guidance_scale: float = 7.5,
    negative_prompt: str = "",
    seed: int | Sequence[int] = 0,
    fps: float | None = None,
    size: int | None = None,
    scheduler: str = "ddim",
    device: str = "auto",
    progress: bool = True,
    *,
    height: int | None = None,
    width: int | None = None,
    window: int | None = None,
    overlap: int | None = None,
    shift_windows: bool = True,
    extend: str | Path | None = None,
    context_frames: int | None = None,
    image: str | Path | None = None,
    condition_method: str = "auto",
    batch_size: int | None = None,
    decode_chunk_size: int = 8,
    compile: bool = False,
    cuda_graphs: bool = True,
    base: str | Path | None = None,
    free_init: int | None = None,
    eta: float = 0.0,
) -> dict[str, Any]:
    """Generate one video per prompt; writes `<i>-<slug>.mp4`, `.gif` and `grid.png` into `out`.

    run: a training run folder, a saved pipeline folder, or a `.safetensors` file of `sdvideo export` with
    `base` the Stable Diffusion it was trained on (see `load_pipeline`).

    frames: frames to generate (with `extend`: new frames after the video; with `image`: in all).
    seed: an int (prompt i uses seed + i) or one per prompt. fps defaults to the training rate
    (also the playback rate); size to the training size. window/overlap: sliding windows, tiled
    differently at every step (shift_windows=False: one fixed tiling).
    extend: a video to continue from its last `context_frames` frames (default: the frames
    trained with, less one); the files hold the whole video plus the continuation.
    image: a still to animate (frame 0). condition_method: "auto", "mask" or "replace".
    compile / cuda_graphs: torch.compile the UNet's blocks first; CUDA graphs (see `load_pipeline`).
    free_init: sample each video this many times, each starting from the last one's low frequencies
    (`VideoPipeline.enable_free_init`; None or 1: once).
    eta: DDIM's fresh noise per step (0: deterministic), drawn from the run's noise prior like the starting noise.
    Returns files, fps, frames, size and videos: float (prompts, frames, 3, H, W) in [0, 1].
    """
    if extend is not None and image is not None:
        raise ValueError("pass either --extend VIDEO or --image IMG, not both")
    prompts = list(prompts) or ([""] if extend is not None or image is not None else [])
    if not prompts:
        raise ValueError("no prompt; pass --prompt TEXT or --prompts-file FILE")
    check_sample_options(out, frames=frames, steps=steps, guidance_scale=guidance_scale, fps=fps, size=size,
                         height=height, width=width, window=window, overlap=overlap, context_frames=context_frames,
                         batch_size=batch_size, decode_chunk_size=decode_chunk_size, free_init=free_init, eta=eta)
    if eta > 0 and not adds_noise_per_step(make_scheduler(scheduler, {}), eta):  # default config: no model needed
        raise ValueError(f"--eta {eta} needs a scheduler with eta, such as --scheduler ddim (dpm++-sde adds its own "
                         "noise)")
    seeds = [int(seed) + i for i in range(len(prompts))] if isinstance(seed, int) else list(seed)
    if len(seeds) != len(prompts):
        raise ValueError(f"{len(seeds)} seeds for {len(prompts)} prompts; pass one seed or one per prompt")
    still = open_image(image) if image is not None else None  # fail fast, before loading the model
    if extend is not None:
        probe_video(extend)
    pipe = load_pipeline(run, scheduler, device, progress, compile, cuda_graphs, base)
    if free_init and free_init > 1:
        pipe.enable_free_init(free_init)
    fps = float(fps if fps is not None else pipe.config.default_fps or 10.0)
    size = size or pipe.config.default_size or 512
    if size % pipe.vae_scale_factor:
        raise ValueError(f"size {size} is not a multiple of the VAE's downsampling factor {pipe.vae_scale_factor}")

    source: np.ndarray | None = None  # uint8 (T, H, W, 3): the video being extended
    condition_call = None
    common = dict(num_inference_steps=steps, guidance_scale=guidance_scale, fps=fps, window_size=window,
                  window_overlap=overlap, shift_windows=shift_windows, condition_method=condition_method,
                  decode_chunk_size=decode_chunk_size, eta=eta)
    if still is not None:
        pixels = load_image(still, size)
        condition_call = lambda batch, gens: pipe.image_to_video(  # noqa: E731
            pixels, batch, num_frames=frames, generator=gens, negative_prompt=negative_prompt, **common)
    elif extend is not None:
        source = decode_video(extend, fps=fps, size=size).frames
        n = min(len(source), context_frames or max(1, (pipe.config.trained_frames or 2) - 1))
        condition_call = lambda batch, gens: pipe.extend(  # noqa: E731
            source[-n:], batch, new_frames=frames, generator=gens, negative_prompt=negative_prompt, **common)

    chunk = batch_size or len(prompts)
    parts = []
    for i in range(0, len(prompts), chunk):
        batch, gens = prompts[i : i + chunk], seed_generators(seeds[i : i + chunk], len(prompts[i : i + chunk]))
        if condition_call is not None:
            parts.append(condition_call(batch, gens).frames)
        else:
            parts.append(pipe(batch, negative_prompt=negative_prompt, num_frames=frames, height=height or size,
                              width=width or height or size, generator=gens, **common).frames)
    videos = torch.cat(parts)  # (prompts, frames, 3, H, W) in [0, 1]
    if source is not None:  # the whole source video, then the new frames
        new = videos[:, n:]
        original = torch.from_numpy(source).permute(0, 3, 1, 2).float().div(255)  # (T, 3, H, W)
        videos = torch.cat([original.expand(len(prompts), -1, -1, -1, -1), new], dim=1)

    names = [f"{i:02d}-{slug(prompt)}" for i, prompt in enumerate(prompts)]
    written, _ = write_videos(videos, out, names, fps, labels=list(prompts))
    return dict(files=[str(f) for f in written], fps=fps, frames=int(videos.shape[1]), size=size, videos=videos)


def interpolate_video(
    run: str | Path,
    video: str | Path,
    out: str | Path,
    factor: int = 2,
    prompt: str = "",
    steps: int = 25,
    guidance_scale: float = 1.0,
    seed: int = 0,
    input_fps: float | None = None,
    size: int | None = None,
    scheduler: str = "ddim",
    device: str = "auto",
    progress: bool = True,
    window: int | None = 16,
    overlap: int | None = None,
    condition_method: str = "auto",
    compile: bool = False,
    cuda_graphs: bool = True,
    base: str | Path | None = None,
    free_init: int | None = None,
) -> dict[str, Any]:
    """Raise a video's frame rate `factor` times: writes an .mp4 at fps * factor.

    The video is decoded at its own rate (or `input_fps`) and the training size; its frames become
    every factor-th frame of the output and the model fills the rest. out: an .mp4 path or a folder
    (then `<stem>-x<factor>.mp4`). window: frames per sliding window (None or 0: all at once).
    compile / cuda_graphs: torch.compile the UNet's blocks first; CUDA graphs (see `load_pipeline`).
    run, base: as for `sample` (a file of `sdvideo export` needs `base`).
    """
    check_interpolate_options(out, factor=factor, steps=steps, guidance_scale=guidance_scale, input_fps=input_fps,
                              size=size, window=window, overlap=overlap)
    probe_video(video)
    pipe = load_pipeline(run, scheduler, device, progress, compile, cuda_graphs, base)
    size = size or pipe.config.default_size or 512
    source = decode_video(video, fps=input_fps, size=size)
    if len(source.frames) < 2:
        raise ValueError(f"{video}: interpolation needs at least 2 frames, got {len(source.frames)}")
    out_fps = source.fps * factor
    result = pipe.interpolate(
        source.frames, factor, prompt, num_inference_steps=steps, guidance_scale=guidance_scale, fps=out_fps,
        generator=seed_generators(seed, 1), window_size=window or None, window_overlap=overlap,
        condition_method=condition_method,
    ).frames[0]  # ((n - 1) * factor + 1, 3, H, W)
    out = Path(out)
    path = out if out.suffix.lower() == ".mp4" else out / f"{Path(video).stem}-x{factor}.mp4"
    write_mp4(to_uint8_frames(result), path, out_fps)
    return dict(files=[str(path)], fps=out_fps, frames=int(result.shape[0]), size=size, video=result)
