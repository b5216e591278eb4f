"""`sdvideo eval`: does a training run's temporal layers learn motion? Numbers and pictures.

    evaluate("runs/drive", "runs/drive-cache", "runs/drive-eval")  # -> report.md, metrics.json, plots

1. held-out clips: the run's validation tail when --data is its training cache, every clip of any
   other cache, or of videos (prepared into OUT/cache first with the run's base);
2. held-out denoising loss by timestep bucket for the video model, the same weights with the
   temporal layers off, and the base image model (`loss_buckets.py`);
3. samples with the same prompts and seeds, temporal layers on and off; motion statistics of
   them and of the real clips decoded from the cache with the base VAE (`flow.py`);
4. the ego-motion check on samples of the driving-scene prompt (`ego_motion.py`);
5. optional CLIP score (`clip_score.py`) with a local CLIP folder;
6. report.md, metrics.json, plots and frame grids (`report.py`).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ..checks import check_int, check_out_folder
from ..data.cache import check_cache_matches_identity, load_cache_info
from ..models.base import load_base
from ..sampling.export import grid_columns, tile_videos, to_uint8_frames, write_gif
from ..sampling.pipeline import VideoPipeline, load_video_unet, seed_generators, trained_unet_folder
from ..sampling.sample import check_guidance_scale, check_sampling_extras, load_pipeline, resolve_device
from ..sampling.sampler import decode_latents
from ..training.batches import clip_set
from ..training.config import TrainConfig, load_run_config
from ..training.validation import held_out_clips, stack_clips, video_predictor, warn_if_fewer
from ..run_identity import base_mismatch, cache_fingerprint, check_run_base, run_base_path
from ..demo import driving_scene
from .clip_score import clip_folder
from .ego_motion import agreement_rate, thresholds
from .appearance import summarize_appearance
from .flow import summarize
from .shape_consistency import summarize_shape_consistency
from .fvd import detector_file
from .loss_buckets import bucket_losses, image_predictor, shuffled_frames
from .report import plot_flow, plot_losses, write_frame_grid, write_metrics, write_report


def run_config(run: str | Path, data: str | Path) -> TrainConfig:
    """The run's TrainConfig (extra keys of config.json dropped) pointed at the cache `data`."""
    saved = load_run_config(run)
    cfg = TrainConfig.from_dict(saved)  # a run of any version
    same = Path(str(saved.get("data", ""))).resolve() == Path(data).resolve() or (
        saved.get("data_fingerprint") is not None
        and saved["data_fingerprint"] == cache_fingerprint(load_cache_info(data)))  # a copy of the training cache
    # another cache than the one trained on: every clip is unseen, so all of them are held out
    return dataclasses.replace(cfg, data=str(data), val_holdout=cfg.val_holdout if same else 0.0)


def held_out_cache(data: str | Path, out: Path, config: dict[str, Any], base: Any, caption: str) -> Path:
    """`data` (which exists: `evaluate` checks before loading models) when it is a latent cache;
    otherwise prepare the videos at `data` into out/cache."""
    path = Path(data)
    if (path / "cache.json").is_file():
        return path
    from ..data.prepare import prepare

    cache = out / "cache"
    summary = prepare([path], cache, base, fps=float(config["cache_fps"]), size=int(config["cache_size"]),
                      caption=caption, overwrite=True, progress=False, clip_frames=int(config.get("frames", 5)))
    if summary.used == 0:
        reasons = "; ".join(r for _, r in summary.skipped) or "no videos found"
        raise ValueError(f"{path}: no usable video to evaluate on ({reasons})")
    return cache


def check_same_base(other_run: str | Path, config: dict[str, Any], run: str | Path) -> None:
    """A control run must share the evaluated run's (`run`, its config.json `config`) base, else its losses
    compare other image models: the same recorded identity, or for runs without one the same folder."""
    other = load_run_config(other_run)
    if other.get("base_identity") and config.get("base_identity"):
        same = base_mismatch(config["base_identity"], other["base_identity"], unet=True) is None
    else:
        same = run_base_path(other_run, other).resolve() == run_base_path(run, config).resolve()
    if not same:
        raise ValueError(f"{other_run}: trained on base {other['base']}, not {config['base']}; a control "
                         "must share the evaluated run's base")


def check_eval_options(out: str | Path, *, samples: int | None = 4, frames: int | None = None, steps: int = 25,
                       guidance_scale: float = 3.0, clips: int = 32, buckets: int = 5, per_bucket: int = 2,
                       stride: int | None = None, free_init: int | None = None, eta: float = 0.0) -> None:
    """`evaluate`'s numeric options and --out, checked before any model loads: one-line ValueErrors."""
    check_int("--samples", samples, 1, optional=True)
    check_int("--frames", frames, 1, optional=True, hint=" (or leave it out for the frames trained with)")
    check_int("--steps", steps, 1)
    check_guidance_scale(guidance_scale)
    check_int("--clips", clips, 1)
    check_int("--buckets", buckets, 1)
    check_int("per_bucket", per_bucket, 1)
    check_int("stride", stride, 1, optional=True)
    check_sampling_extras(free_init, eta)
    check_out_folder(out)


def plan_samples(prompts: Sequence[str], seeds: Sequence[int], samples: int | None,
                 captions: Sequence[str]) -> tuple[list[str], list[int]]:
    """Prompt and seed of every sample: prompts (default: the held-out captions) cycled to `samples`;
    one seed means seed + i, else one seed per sample."""
    pool = [p for p in prompts] or [c for c in dict.fromkeys(captions) if c] or [""]
    n = samples if samples is not None else len(pool)
    if n < 1:
        raise ValueError(f"--samples must be at least 1, got {n}")
    chosen = [pool[i % len(pool)] for i in range(n)]
    seeds = list(seeds) or [0]
    if len(seeds) == 1:
        seeds = [seeds[0] + i for i in range(n)]
    if len(seeds) != n:
        raise ValueError(f"{len(seeds)} seeds for {n} samples; pass one seed or one per sample")
    return chosen, seeds


def generate(pipe: VideoPipeline, prompts: list[str], seeds: list[int], frames: int, steps: int,
             guidance_scale: float, enable_time: bool, batch: int = 8, fps: float | None = None,
             free_init: int | None = None, eta: float = 0.0, **window: Any) -> list[np.ndarray]:
    """uint8 (frames, H, W, 3) per (prompt, seed): the same noise with temporal layers on or off.
    fps: the rate to condition on (default the training rate); window: window_size, window_overlap, shift_windows.
    free_init: with the temporal layers on, sample each video this many times (FreeInit); frame-independent
    samples are always sampled once, since FreeInit's restart would tie their frames together.
    eta: DDIM's fresh noise per step, from the run's noise prior (both kinds of samples)."""
    pipe.disable_free_init()
    if enable_time and free_init and free_init > 1:
        pipe.enable_free_init(free_init)
    videos: list[np.ndarray] = []
    for i in range(0, len(prompts), batch):
        out = pipe(prompts[i : i + batch], num_frames=frames, num_inference_steps=steps, guidance_scale=guidance_scale,
                   generator=seed_generators(seeds[i : i + batch], len(prompts[i : i + batch])),
                   enable_time=enable_time, fps=fps, eta=eta, **window).frames  # (b, frames, 3, H, W) in [0, 1]
        videos += [to_uint8_frames(v) for v in out]
    return videos


def evaluate(
    run: str | Path,
    data: str | Path,
    out: str | Path,
    prompts: Sequence[str] = (),
    seeds: Sequence[int] = (0,),
    samples: int | None = 4,
    frames: int | None = None,
    steps: int = 25,
    guidance_scale: float = 3.0,
    clips: int = 32,
    buckets: int = 5,
    per_bucket: int = 2,
    noise_seeds: Sequence[int] = (1234, 1235, 1236),
    controls: dict[str, str | Path] | None = None,
    loss_precision: str = "auto",
    stride: int | None = None,
    save_videos: bool = False,
    ego_prompt: str | None = None,
    caption: str = "",
    clip_model: str | Path | None = None,
    fvd_model: str | Path | None = None,
    device: str = "auto",
    progress: bool = False,
    free_init: int | None = None,
    eta: float = 0.0,
) -> dict[str, Any]:
    """Evaluate `run` on held-out `data` into `out`; returns the metrics (also in out/metrics.json).

    controls: other runs on the same base (e.g. the capacity control, trained with
    `temporal_kernel_size=1, temporal_context="frame"`) whose held-out loss goes beside the video
    model's. loss_precision: "fp32", "bf16" (autocast, CUDA) or "auto" (bf16 on CUDA). stride: take
    the held-out clips at this one stride (default: the run's strides) and sample at their frame rate.
    save_videos: also write every real clip and sample as uint8 arrays (out/videos.npz).
    free_init: sample the video model's videos this many times each (FreeInit, as `sample --free-init`).
    eta: DDIM's fresh noise per step for all samples (as `sample --eta`; 0: deterministic).
    """
    started = time.time()
    check_eval_options(out, samples=samples, frames=frames, steps=steps, guidance_scale=guidance_scale, clips=clips,
                       buckets=buckets, per_bucket=per_bucket, stride=stride, free_init=free_init, eta=eta)
    config = load_run_config(run)  # one-line error for a folder without config.json
    trained_unet_folder(run)  # before any model loads
    if not Path(data).exists():
        raise FileNotFoundError(f"{data}: no such cache or video; pass a cache folder from `sdvideo prepare` "
                                "or video files/folders")
    if clip_model is not None:  # the loaders' own checks, before minutes of sampling
        clip_folder(clip_model)
    if fvd_model is not None:
        detector_file(fvd_model)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    dev = resolve_device(device)
    base_path = run_base_path(run, config)  # config.json's base from any working folder
    base = load_base(base_path, device=dev)
    check_run_base(run, config, base, base_path, unet=True)
    cache = held_out_cache(data, out, config, base, caption)
    check_cache_matches_identity(load_cache_info(cache), base.identity(), str(cache))  # as `train` refuses it
    cfg = run_config(run, cache)
    if stride is not None:
        cfg = dataclasses.replace(cfg, strides=[int(stride)])
    frames = frames or cfg.frames
    info = load_cache_info(cache)

    # ---- held-out clips: latents (n, c, f, h, w), their caption embeddings and fps
    items = held_out_clips(clip_set(cfg, "val"), clips)
    warn_if_fewer(items, clips, f"eval of {run} on {data}")
    latents, text, fps = stack_clips(items)
    captions = [info["captions"][(info["videos"][it["video"]].get("captions") or [0])[0]] for it in items]

    # ---- (1) loss by timestep bucket: video, independent, base, shuffled frames, controls; the same noise
    unet = load_video_unet(run, dev, torch.float32)
    predictors = {"video": video_predictor(unet, True), "independent": video_predictor(unet, False),
                  "base": image_predictor(base.unet.to(dev, torch.float32).eval()),
                  "shuffled": shuffled_frames(video_predictor(unet, True), latents.shape[2])}
    compare = [("video", "independent"), ("shuffled", "video")]
    for name, control in (controls or {}).items():
        check_same_base(control, config, run)
        predictors[name] = video_predictor(load_video_unet(control, dev, torch.float32), True)
        compare += [(name, "independent"), ("video", name)]
    if loss_precision not in ("auto", "fp32", "bf16"):
        raise ValueError(f"loss_precision must be auto, fp32 or bf16, got {loss_precision!r}")
    mixed = dev.type == "cuda" and loss_precision != "fp32"
    prior = cfg.noise_prior()  # the noise the run trained with
    losses = bucket_losses(predictors, base.scheduler, latents, text, fps, buckets, per_bucket, seeds=noise_seeds,
                           device=dev, autocast=mixed, compare=compare, noise_prior=prior)
    losses["clips_asked"] = clips
    losses["precision"] = "bf16" if mixed else "fp32"
    losses["noise"] = prior.describe()
    if not prior.independent:  # shared noise is easier for a model that sees all frames: also measure without it
        pair = {k: predictors[k] for k in ("video", "independent")}
        losses["independent noise"] = bucket_losses(pair, base.scheduler, latents, text, fps, buckets, per_bucket,
                                                    seeds=noise_seeds, device=dev, autocast=mixed, compare=compare[:1])
    del predictors, unet

    # ---- (2) real clips through the base VAE, samples with temporal layers on and off
    with torch.no_grad():
        real = [to_uint8_frames(v) for v in decode_latents(base.vae, latents.to(dev))]
    pipe = load_pipeline(run, "ddim", str(dev), progress)  # fp16 on CUDA, as `sdvideo sample`
    sample_prompts, sample_seeds = plan_samples(prompts, seeds, samples, captions)
    rate = float(fps[0]) if stride is not None else None  # the held-out clips' rate, else the training rate
    video_samples = generate(pipe, sample_prompts, sample_seeds, frames, steps, guidance_scale, True, fps=rate,
                             free_init=free_init, eta=eta)
    independent = generate(pipe, sample_prompts, sample_seeds, frames, steps, guidance_scale, False, fps=rate,
                           eta=eta)
    # like with like: the real clips captioned as the samples were prompted, when there are any
    prompted = [r for r, c in zip(real, captions) if c in set(sample_prompts)] or real
    groups = {"real": prompted, "video": video_samples, "independent": independent}
    motion = {g: summarize(clips) for g, clips in groups.items()}
    shape = {g: summarize_shape_consistency(clips) for g, clips in groups.items() if clips[0].shape[0] >= 3}
    appearance = {g: summarize_appearance(clips) for g, clips in groups.items()}

    # ---- (3) ego-motion check on the driving-scene prompt
    ego_prompt = ego_prompt or (driving_scene.CAPTION if driving_scene.CAPTION in info["captions"] else None)
    ego: dict[str, Any]
    ego_rows: list[tuple[str, np.ndarray]] = []
    if ego_prompt is None:
        ego = {"skipped": f"no --ego-prompt and the cache has no clip captioned \"{driving_scene.CAPTION}\""}
    else:
        n = len(sample_seeds)
        ego_video = generate(pipe, [ego_prompt] * n, sample_seeds, frames, steps, guidance_scale, True, fps=rate,
                             free_init=free_init, eta=eta)
        ego_indep = generate(pipe, [ego_prompt] * n, sample_seeds, frames, steps, guidance_scale, False, fps=rate,
                             eta=eta)
        # the check on a rendered scene at the samples' size (at least 64 px: tiny test frames hold no flow)
        reference = driving_scene.render_driving_scene(seed=10_000, frames=max(frames, 3),
                                                       size=max(64, int(real[0].shape[1])), fps=float(fps[0]))
        real_drive = [r for r, c in zip(real, captions) if c == ego_prompt]
        ego = dict(prompt=ego_prompt, thresholds=thresholds(),
                   reference=agreement_rate([reference]), reference_reversed=agreement_rate([reference[::-1]]),
                   real=agreement_rate(real_drive), video=agreement_rate(ego_video),
                   independent=agreement_rate(ego_indep))
        ego_rows = [("rendered scene", reference)] + [(f"real held-out {i}", r) for i, r in enumerate(real_drive[:2])]
        for i, (v, d) in enumerate(zip(ego_video[:3], ego_indep[:3])):
            ego_rows += [(f"seed {sample_seeds[i]}: video model (agrees: {ego['video']['per_clip'][i]['agrees']})", v),
                         (f"seed {sample_seeds[i]}: frames independent", d)]
    del pipe

    clip_result = None
    if clip_model is not None:
        from .clip_score import clip_scores

        clip_result = {}
        for key, vids in (("video", video_samples), ("independent", independent)):
            values = clip_scores(vids, sample_prompts, clip_model, dev)
            clip_result[key] = dict(mean=float(np.mean(values)), per_sample=values)

    fvd_result = None
    if fvd_model is not None:  # real held-out clips vs samples with the temporal layers on and off
        from .fvd import frechet_distance, load_detector, video_features

        detector = load_detector(fvd_model, dev)
        real_features = video_features(real, detector, dev)
        fvd_result = {key: frechet_distance(real_features, video_features(vids, detector, dev))
                      for key, vids in (("video", video_samples), ("independent", independent))}
        fvd_result["videos"] = dict(real=len(real), generated=len(video_samples))

    # ---- (4) the report
    grid_rows = [(f"real: {c}", r) for r, c in list(zip(real, captions))[:4]]
    for i, (p, s) in enumerate(zip(sample_prompts, sample_seeds)):
        if i >= 4:
            break
        grid_rows += [(f"video model, seed {s}: {p}", video_samples[i]), (f"frames independent, seed {s}", independent[i])]
    # rows: real held-out clips, the video model's samples, frame-independent samples (same seeds)
    comparison = [prompted[:4], video_samples[:4], independent[:4]]
    figures = {
        "comparison": write_gif(tile_videos(comparison), out / "comparison.gif", float(fps[0])),
        "losses": plot_losses(losses, out / "loss_by_timestep.png"),
        "flow": plot_flow(motion, out / "flow_statistics.png"),
        "grid": write_frame_grid([(label, grid_columns(v)) for label, v in grid_rows], out / "grid.png"),
        "ego_grid": write_frame_grid([(label, grid_columns(v)) for label, v in ego_rows], out / "ego_grid.png"),
    }
    metrics: dict[str, Any] = dict(
        run=str(run), data=str(data), cache=str(cache), device=str(dev), frames=frames, clip_frames=latents.shape[2],
        steps=steps, free_init=free_init or 1, eta=eta,
        guidance_scale=guidance_scale, prompts=sample_prompts, seeds=sample_seeds, losses=losses, motion=motion,
        shape_consistency=shape, appearance=appearance,
        ego_motion=ego, clip_score=clip_result, fvd=fvd_result,
        files={k: str(v) for k, v in figures.items() if v is not None},
    )
    if save_videos:
        arrays = dict(real=np.stack(prompted[:16]), video=np.stack(video_samples), independent=np.stack(independent))
        if ego_rows:
            arrays.update(ego_video=np.stack(ego_video), ego_independent=np.stack(ego_indep))
        np.savez_compressed(out / "videos.npz", **arrays)
    metrics["seconds"] = time.time() - started
    write_metrics(metrics, out)
    write_report(metrics, out, figures)
    return metrics
