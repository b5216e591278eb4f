"""The whole CLI on a GPU with a tiny random model: prepare (fp16 VAE on CUDA) -> train (bf16 autocast,
frozen weights in bf16, 8-bit AdamW, attention checkpointing, fps conditioning) -> resume (--compiled: with
block regions compiled) -> sample (--compiled: layers compiled).

    python bench/gpu_smoke.py --out /tmp/gpu-smoke      # needs CUDA; prints what each stage reported
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import media  # noqa: E402

from sdvideo.models.base import build_base  # noqa: E402


def sh(*args: str) -> str:
    start = time.time()
    run = subprocess.run([sys.executable, "-m", "sdvideo", *args], capture_output=True, text=True)
    print(f"$ sdvideo {' '.join(args)}  [{time.time() - start:.1f} s, exit {run.returncode}]")
    tail = "\n".join(line for line in (run.stdout + run.stderr).splitlines() if "it/s" not in line)[-1500:]
    print(tail, flush=True)
    if run.returncode != 0:
        raise SystemExit(run.returncode)
    return run.stdout


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="/tmp/gpu-smoke")
    ap.add_argument("--compiled", action="store_true", help="resume training with block regions compiled and sample "
                    "with layers compiled (the compiled forms of every layer, e.g. the upsamplers' matmul)")
    args = ap.parse_args()
    out = Path(args.out)
    compiled = ["--compile", "blocks"] if args.compiled else []
    out.mkdir(parents=True, exist_ok=True)
    build_base("tiny", seed=0).save(out / "base")
    clips = [str(media.write_video(out / f"clip{i}.mp4", frames=60, fps=12, width=48, height=32, codec="libx264"))
             for i in range(2)]
    sh("prepare", *clips, "--out", str(out / "cache"), "--base", str(out / "base"), "--fps", "6", "--size", "32",
       "--caption", "a moving square")
    common = ["--data", str(out / "cache"), "--base", str(out / "base"), "--out", str(out / "run"), "--frames", "4",
              "--batch-size", "2", "--mixed-precision", "bf16", "--optimizer", "adamw8bit",
              "--gradient-checkpointing", "attention", "--checkpoint-every", "5", "--strides", "1", "2"]
    sh("train", *common, "--steps", "5")
    sh("train", *common, "--steps", "10", "--resume", *compiled)
    config = json.loads((out / "run" / "config.json").read_text())
    print("optimizer built:", config.get("optimizer_built"), "| mixed precision:", config.get("mixed_precision"))
    sh("sample", "--run", str(out / "run"), "--prompt", "a moving square", "--frames", "6", "--steps", "4",
       "--out", str(out / "samples"), *(["--compile"] if args.compiled else []))
    print("files:", sorted(p.name for p in (out / "samples").iterdir()))
    compare_cuda_graphs(out / "run")


def compare_cuda_graphs(run: Path) -> None:
    """The pipeline's latents with and without CUDA graphs (fp16, as `sdvideo sample` runs), over two videos
    so the second reuses the first's graph."""
    import torch

    from sdvideo.sampling.pipeline import VideoPipeline

    pipe = VideoPipeline.from_run(run, "ddim", "cuda", torch.float16).enable_fast_inference()  # as `sample`
    pipe.set_progress_bar_config(disable=True)
    results = {}
    for graphs in (False, True):
        pipe.enable_cuda_graphs(graphs)
        results[graphs] = [pipe("a moving square", num_frames=6, num_inference_steps=6, seed=seed, output_type="latent").frames
                           for seed in (0, 1)]
    diff = max((a.float() - b.float()).abs().max().item() for a, b in zip(results[False], results[True]))
    print(f"CUDA graphs: {len(pipe.cuda_graphs.graphs)} graph(s) recorded, max |latent difference| vs plain calls {diff}")


if __name__ == "__main__":
    main()
