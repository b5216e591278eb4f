"""Where does the samples' flicker come from? Sample one trained run several ways and measure each.

    python bench/probe_flicker.py runs/experiment/run --json flicker.json

Every variant samples the driving prompt with the same seeds (16 frames at --fps) and reports the motion statistics
(`eval/flow.py`), the shape consistency (`eval/shape_consistency.py`), colour, contrast, detail and diversity
(`eval/appearance.py`) and the spread of the frames' mean brightness within a clip. Variants: the experiment's eval
settings (fp16 on CUDA, guidance 7.5, 25 DDIM steps), FreeInit, DDIM with fresh noise at each step (eta, from the
noise prior), fp32, guidance 3 and none, 50 steps, DPM++, DPM++ SDE and Euler ancestral samplers, other noise
priors, temporal layers off.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from sdvideo.demo.driving_scene import CAPTION  # noqa: E402
from sdvideo.eval.appearance import summarize_appearance  # noqa: E402
from sdvideo.eval.flow import summarize  # noqa: E402
from sdvideo.eval.shape_consistency import summarize_shape_consistency  # noqa: E402
from sdvideo.noise_prior import NoisePrior  # noqa: E402
from sdvideo.sampling.sampler import initial_noise  # noqa: E402
from sdvideo.sampling.export import to_uint8_frames  # noqa: E402
from sdvideo.sampling.pipeline import VideoPipeline  # noqa: E402


def measure(videos: list[np.ndarray]) -> dict:
    motion, shape, look = summarize(videos), summarize_shape_consistency(videos), summarize_appearance(videos)
    brightness = [float(v.astype(np.float32).mean(axis=(1, 2, 3)).std() / 255) for v in videos]
    return dict(warp_error=motion["warp_error"], flicker=motion["flicker"], flow=motion["flow_magnitude"],
                consistent=shape["consistent_share"], shape_score=shape["score"], brightness_std=float(np.mean(brightness)),
                colourfulness=look["colourfulness"], contrast=look["contrast"], detail=look["detail"],
                diversity=look["diversity"])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run")
    p.add_argument("--samples", type=int, default=8)
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--fps", type=float, default=10.0)
    p.add_argument("--json", default=None)
    p.add_argument("--only", nargs="+", default=None, metavar="WORDS",
                   help="run only the variants whose names start with one of these (e.g. eval FreeInit)")
    args = p.parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    seeds = list(range(args.samples))
    prompts = [CAPTION] * len(seeds)
    pipes = {dtype: VideoPipeline.from_run(args.run, "ddim", device, dtype).enable_fast_inference()  # as `sample`
             for dtype in (torch.float16, torch.float32)}
    if device.type == "cpu":
        pipes[torch.float16] = pipes[torch.float32]
    for pipe in pipes.values():
        pipe.set_progress_bar_config(disable=True)
    pipe = pipes[torch.float32]
    side = (pipe.config.default_size or pipe.unet.unet.config.sample_size * pipe.vae_scale_factor) // pipe.vae_scale_factor
    shape = (pipe.unet.unet.config.in_channels, args.frames, side, side)  # (c, f, h, w) latents
    trained = NoisePrior.from_dict(pipe.config.noise_prior) if getattr(pipe.config, "noise_prior", None) else NoisePrior()
    half = torch.float16
    variants = {  # name: (dtype, guidance, steps, noise prior, temporal layers on, scheduler[, {free_init, eta}])
        f"eval settings (fp16, guidance 7.5, 25 steps, noise {trained.describe()})":
            (half, 7.5, 25, trained, True, "ddim"),
        "FreeInit, 3 iterations": (half, 7.5, 25, trained, True, "ddim", dict(free_init=3)),
        "DDIM eta 1 (fresh noise each step, from the prior)": (half, 7.5, 25, trained, True, "ddim", dict(eta=1.0)),
        "DDIM eta 0.5": (half, 7.5, 25, trained, True, "ddim", dict(eta=0.5)),
        "DDIM eta 1, 50 steps": (half, 7.5, 50, trained, True, "ddim", dict(eta=1.0)),
        "DPM++ SDE 25 steps": (half, 7.5, 25, trained, True, "dpm++-sde"),
        "fp32": (torch.float32, 7.5, 25, trained, True, "ddim"),
        "guidance 3": (half, 3.0, 25, trained, True, "ddim"),
        "no guidance": (half, 1.0, 25, trained, True, "ddim"),
        "50 steps": (half, 7.5, 50, trained, True, "ddim"),
        "DPM++ 25 steps": (half, 7.5, 25, trained, True, "dpm++"),
        "Euler ancestral 25 steps": (half, 7.5, 25, trained, True, "euler-a"),
        "temporal layers off": (half, 7.5, 25, trained, False, "ddim"),
    }
    for prior in (NoisePrior(), NoisePrior(share=0.5), NoisePrior(share=0.8), NoisePrior(lowpass=0.0),
                  NoisePrior(lowpass=0.125), NoisePrior(share=0.5, lowpass=0.0)):
        if prior != trained:
            variants[f"noise {prior.describe()}"] = (half, 7.5, 25, prior, True, "ddim")
            variants[f"temporal layers off, noise {prior.describe()}"] = (half, 7.5, 25, prior, False, "ddim")
    if args.only:
        variants = {k: v for k, v in variants.items() if k.startswith(tuple(args.only))}
    rows = {}
    for name, (dtype, guidance, steps, prior, on, scheduler, *extra) in variants.items():
        options = extra[0] if extra else {}
        pipes[dtype].set_scheduler(scheduler)
        pipes[dtype].disable_free_init()
        if options.get("free_init"):
            pipes[dtype].enable_free_init(options["free_init"])
        gens = [torch.Generator().manual_seed(s) for s in seeds]  # one per video, as `sample` draws them
        latents = initial_noise((len(seeds), *shape), gens, torch.device("cpu"), torch.float32, prior)
        out = pipes[dtype](prompts, num_frames=args.frames, num_inference_steps=steps, guidance_scale=guidance,
                           fps=args.fps, latents=latents, enable_time=on, generator=gens, noise_prior=prior,
                           eta=options.get("eta", 0.0)).frames
        rows[name] = measure([to_uint8_frames(v) for v in out])
        print(f"{name:42s} " + " ".join(f"{k} {v:.4f}" for k, v in rows[name].items()), flush=True)
        if args.json:
            Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
