"""Do samples longer than the training clips move less? Sample one trained run several ways and measure each.

    python bench/probe_long_samples.py runs/experiment/run --videos runs/experiment/unseen --json long.json

A model trained on clips of F frames has never seen temporal attention across more than F - 1 frames of
offset. Every variant samples the driving prompt with the same seeds and the same initial noise at --fps and
reports the motion statistics (`eval/flow.py`), shape consistency and brightness spread (`probe_flicker.measure`)
beside the real videos' (rendered scenes in --videos, decoded at --fps and passed through the run's autoencoder, as
`eval` measures them):
- F frames (the trained length), and --frames frames (default 16) with
- full attention over all frames (what `sample` does),
- sliding windows of F frames overlapping F / 2 (`sample --window`),
- banded attention: every frame attends to the frames within F - 1 of it, all frames denoised together.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from sdvideo.data.video_io import decode_video  # noqa: E402
from sdvideo.demo.driving_scene import CAPTION  # noqa: E402
from sdvideo.models import temporal_attention  # noqa: E402
from sdvideo.noise_prior import NoisePrior  # noqa: E402
from sdvideo.sampling.conditioning import encode_frames  # noqa: E402
from sdvideo.sampling.export import to_uint8_frames  # noqa: E402
from sdvideo.sampling.pipeline import VideoPipeline  # noqa: E402
from sdvideo.sampling.sampler import decode_latents, initial_noise  # noqa: E402

from probe_flicker import measure  # noqa: E402  (motion, shape consistency and brightness spread of clips)


@contextlib.contextmanager
def banded_attention(radius: int):
    """Temporal attention in which frame i sees frames j with |i - j| <= radius (eager SDPA with a mask)."""
    plain = temporal_attention.frame_attention

    def banded(q, k, v, short_max_frames=None):  # q, k, v: (sequences, heads, frames, head_dim)
        index = torch.arange(q.shape[-2], device=q.device)
        mask = (index[:, None] - index[None, :]).abs() <= radius  # (frames, frames), True: attend
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)

    temporal_attention.frame_attention = banded
    try:
        yield
    finally:
        temporal_attention.frame_attention = plain


def real_videos(pipe: VideoPipeline, folder: Path, frames: int, fps: float, size: int, limit: int) -> list[np.ndarray]:
    """Rendered scenes (drive-*.mp4) at `fps`, their first `frames` frames through the run's autoencoder."""
    out = []
    for path in sorted(folder.glob("drive-*.mp4"))[:limit]:
        video = decode_video(path, fps=fps, size=size).frames[:frames]
        if len(video) < frames:
            continue
        with torch.no_grad():
            latents = encode_frames(pipe.vae, video).to(pipe.device, pipe.vae.dtype)
            out.append(to_uint8_frames(decode_latents(pipe.vae, latents)[0]))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run")
    p.add_argument("--videos", required=True, help="folder of rendered scenes no stage trained on (drive-*.mp4)")
    p.add_argument("--samples", type=int, default=8)
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--fps", type=float, default=10.0)
    p.add_argument("--guidance", type=float, default=7.5)
    p.add_argument("--steps", type=int, default=25)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    pipe = VideoPipeline.from_run(args.run, "ddim", device, torch.float32)
    pipe.set_progress_bar_config(disable=True)
    trained = pipe.config.trained_frames or 8
    side = (pipe.config.default_size or pipe.unet.unet.config.sample_size * pipe.vae_scale_factor) // pipe.vae_scale_factor
    prior = NoisePrior.from_dict(pipe.config.noise_prior) if getattr(pipe.config, "noise_prior", None) else NoisePrior()
    seeds = list(range(args.samples))
    rows = {}

    def record(name: str, videos: list[np.ndarray]) -> None:
        rows[name] = measure(videos)
        print(f"{name:48s} " + " ".join(f"{k} {v:.4f}" for k, v in rows[name].items()), flush=True)
        if args.json:
            Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")

    def sample(frames: int, **kwargs) -> list[np.ndarray]:
        gens = [torch.Generator().manual_seed(s) for s in seeds]
        shape = (len(seeds), pipe.unet.unet.config.in_channels, frames, side, side)
        latents = initial_noise(shape, gens, torch.device("cpu"), torch.float32, prior)
        out = pipe([CAPTION] * len(seeds), num_frames=frames, num_inference_steps=args.steps,
                   guidance_scale=args.guidance, fps=args.fps, latents=latents, **kwargs).frames
        return [to_uint8_frames(v) for v in out]

    size = side * pipe.vae_scale_factor
    for frames in (trained, args.frames):
        record(f"real, {frames} frames", real_videos(pipe, Path(args.videos), frames, args.fps, size, args.samples))
    record(f"{trained} frames (trained length)", sample(trained))
    record(f"{args.frames} frames, full attention", sample(args.frames))
    record(f"{args.frames} frames, windows of {trained} overlapping {trained // 2}",
           sample(args.frames, window_size=trained, window_overlap=trained // 2))
    with banded_attention(trained - 1):
        record(f"{args.frames} frames, attention within {trained - 1} frames", sample(args.frames))
    return 0


if __name__ == "__main__":
    sys.exit(main())
