"""`sdvideo` command line: prepare -> train -> sample, and `demo` (the whole recipe on a bundled clip).

Each subcommand turns its flags into a dict of options and calls the stage's Python function with
them, so `sdvideo train --dry-run` shows exactly what `sdvideo.training.train(...)` would receive.
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
from pathlib import Path
from typing import Any, Sequence

from .choices import EXPORT_DTYPES, EXPORT_FORMATS, PREPARE_BATCH_SIZE  # torch-free, as every module `--help` loads


def _add_prepare(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("prepare", help="decode videos and cache VAE latents and caption embeddings")
    p.add_argument("videos", nargs="+", help="video files (mp4 mov mkv webm avi gif), folders (searched "
                   "recursively), quoted globs, or CSV/JSONL manifests (path, caption, start, end)")
    p.add_argument("--out", required=True, help="cache folder to write")
    p.add_argument("--base", required=True, help="Stable Diffusion: diffusers folder or .ckpt/.safetensors")
    p.add_argument("--fps", type=float, default=10.0, help="frame rate to resample to (like ffmpeg -r)")
    p.add_argument("--size", type=int, default=512, help="resize short side and center-crop to this square")
    p.add_argument("--caption", default="", help="caption for videos without a manifest caption or sidecar .txt")
    p.add_argument("--batch-size", type=int, default=PREPARE_BATCH_SIZE, help="frames per VAE batch")
    p.add_argument("--overwrite", action="store_true", help="replace a cache made with other settings")
    p.add_argument("--scene-threshold", type=float, default=None,
                   help="scene-cut detector threshold, 0 disables (default 0.12); clips never span a cut")
    p.add_argument("--clip-frames", type=int, default=5, help="skip videos shorter than this many frames")
    p.add_argument("--workers", type=int, default=4, help="videos decoded in parallel")
    p.add_argument("--shard-mb", type=float, default=1024, help="latent shard file size (MB)")
    p.add_argument("--device", default=None, help="VAE device (default: cuda in float16 when present, else cpu)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


TRAIN_USAGE = "sdvideo train --data CACHE --base BASE --out RUN [options]"


def _add_train(sub: argparse._SubParsersAction) -> None:
    from .options import HelpAll, add_options
    from .training.config import TemporalOptions, TrainConfig  # torch-free: fields, defaults and help

    p = sub.add_parser("train", help="train the temporal layers on a prepared cache", usage=TRAIN_USAGE,
                       description="Train the temporal layers on a cache from `sdvideo prepare`. `auto` choices "
                       "are resolved for this machine; --dry-run prints what they chose.")
    expert: list = []
    p.add_argument("--help-all", action=HelpAll, expert=expert, help="show every option (the expert ones too) and exit")
    p.add_argument("--dry-run", action="store_true",
                   help="print resolved options, parameter counts, memory estimate; train nothing")
    groups = add_options(p, TrainConfig, expert_actions=expert)
    add_options(p, TemporalOptions, groups, expert_actions=expert)


def _add_sample(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sample", help="generate videos from text (or continue a video, or animate an image)")
    p.add_argument("--run", required=True, help="run folder from `sdvideo train`, a saved VideoPipeline folder, or "
                   "a .safetensors file from `sdvideo export` (with --base)")
    _add_base_flag(p)
    p.add_argument("--prompt", action="append", default=[], help="text prompt (repeat for several)")
    p.add_argument("--prompts-file", default=None, help="a text file with one prompt per line")
    p.add_argument("--out", required=True, help="folder for .mp4, .gif and grid.png")
    p.add_argument("--frames", type=int, default=8,
                   help="frames to generate (may exceed the frames trained with; with --extend: new frames)")
    p.add_argument("--steps", type=int, default=25)
    p.add_argument("--guidance-scale", type=float, default=7.5)
    p.add_argument("--negative-prompt", default="")
    p.add_argument("--seed", type=int, nargs="+", default=[0], help="one seed (prompt i uses seed + i) or one per prompt")
    p.add_argument("--fps", type=float, default=None, help="fps condition and playback rate (default: training rate)")
    p.add_argument("--size", default=None, metavar="N|WxH",
                   help="frame size in pixels: N (square) or width x height, e.g. 768x432 (default: training size)")
    p.add_argument("--scheduler", default="ddim",
                   help="ddim, ddpm, dpm++, dpm++-karras, dpm++-sde, euler, euler-a, heun, pndm, unipc, deis, "
                        "or a diffusers scheduler class name")
    p.add_argument("--eta", type=float, default=0.0,
                   help="ddim: fresh noise at each step, drawn like the starting noise (0: deterministic; 1: as DDPM)")
    p.add_argument("--window", type=int, default=None, help="sliding temporal window in frames (long videos)")
    p.add_argument("--overlap", type=int, default=None, help="frames shared by neighbouring windows (default: half)")
    p.add_argument("--shift-windows", action=argparse.BooleanOptionalAction, default=True,
                   help="tile the windows differently at every denoising step, so that no frame is always at an edge "
                        "(default; --no-shift-windows: one fixed tiling)")
    p.add_argument("--free-init", type=int, default=None, metavar="N",
                   help="FreeInit: sample each video N times, each starting from the last one's low frequencies "
                        "(N x the steps; default: once)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--extend", default=None, metavar="VIDEO", help="continue this video from its last frames")
    mode.add_argument("--image", default=None, metavar="IMG", help="animate this still (it becomes frame 0)")
    p.add_argument("--context-frames", type=int, default=None,
                   help="with --extend: known frames taken from the end of VIDEO (default: frames trained with - 1)")
    p.add_argument("--condition", choices=["auto", "mask", "replace"], default="auto",
                   help="how known frames are kept: mask channels (a --task model) or replacement (any model)")
    p.add_argument("--batch-size", type=int, default=None, help="prompts per batch (default: all)")
    p.add_argument("--decode-chunk", type=int, default=8, help="frames per VAE decode slice")
    p.add_argument("--device", default="auto")
    _add_speed_flags(p)


def _add_interpolate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("interpolate", help="raise a video's frame rate k times with a trained run")
    p.add_argument("video", help="video file to interpolate")
    p.add_argument("--run", required=True, help="run folder from `sdvideo train`, or a .safetensors file from "
                   "`sdvideo export` (with --base)")
    _add_base_flag(p)
    p.add_argument("--factor", type=int, default=2, help="output frames per input frame interval (>= 2)")
    p.add_argument("--out", required=True, help="output .mp4, or a folder for <video>-x<factor>.mp4")
    p.add_argument("--prompt", default="", help="optional text describing the video")
    p.add_argument("--steps", type=int, default=25)
    p.add_argument("--guidance-scale", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fps", type=float, default=None, help="resample the input to this rate first (default: its own)")
    p.add_argument("--size", type=int, default=None, help="square size in pixels (default: training size)")
    p.add_argument("--scheduler", default="ddim")
    p.add_argument("--window", type=int, default=16, help="frames per sliding window (0: all at once)")
    p.add_argument("--overlap", type=int, default=None)
    p.add_argument("--condition", choices=["auto", "mask", "replace"], default="auto")
    p.add_argument("--device", default="auto")
    _add_speed_flags(p)


def _add_base_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--base", default=None, help="with --run FILE.safetensors: the Stable Diffusion its temporal layers "
                   "were trained on (diffusers folder or .ckpt/.safetensors); with a run folder: a copy of the run's "
                   "base to load instead of the path its config.json records (it must be the same model)")


def _add_export(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="write a run's temporal layers to one file to share (sdvideo, AnimateDiff or "
                       "MotionLoRA format)",
                       description="Write a trained run's own layers to one safetensors file.",
                       epilog="formats:\n" + "\n".join(f"  {name:<12} {text}" for name, text in EXPORT_FORMAT_HELP),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", metavar="RUN", help="run folder from `sdvideo train` (or RUN/best); its unet/ weights, as "
                   "`sample` uses")
    p.add_argument("--format", choices=EXPORT_FORMATS, default="temporal",
                   help="what to write, one of the formats below (default: temporal)")
    p.add_argument("--out", default=None, metavar="FILE", help="file to write (.safetensors; default: "
                   "RUN-FORMAT.safetensors beside the run folder)")
    p.add_argument("--dtype", choices=EXPORT_DTYPES, default="fp16", help="precision of the stored weights "
                   "(default: fp16, half the size of fp32)")


# `sdvideo export --help`: one line per format (sdvideo/export/)
EXPORT_FORMAT_HELP = (
    ("temporal", "sdvideo's temporal layers with their config (sample --run FILE --base BASE)"),
    ("animatediff", "an animatediff run's motion modules as an AnimateDiff module (ComfyUI, A1111)"),
    ("lora", "a --lora-rank animatediff run's adapters as a MotionLoRA (load_lora_weights)"),
)


def _add_speed_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the UNet's repeated blocks first: faster sampling after minutes of compiling")
    p.add_argument("--no-cuda-graphs", dest="cuda_graphs", action="store_false",
                   help="launch each denoising step's kernels one by one instead of replaying a CUDA graph")


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="the whole recipe on a real bundled clip with a small local model (CPU)")
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--quick", action="store_true", help="a much shorter run (smoke test)")


def _add_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="held-out loss by timestep, motion statistics and the ego-motion check of a run")
    p.add_argument("--run", required=True, help="run folder from `sdvideo train`")
    p.add_argument("--data", required=True, help="latent cache (the run's: its held-out tail is used) or videos "
                   "(prepared into OUT/cache with the run's base)")
    p.add_argument("--out", required=True, help="report folder: report.md, metrics.json, plots, frame grids")
    p.add_argument("--prompts", nargs="+", default=[], help="sample prompts (default: the held-out clips' captions)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="one seed (sample i uses seed + i) or one per sample")
    p.add_argument("--samples", type=int, default=4, help="samples with the temporal layers on (and as many off)")
    p.add_argument("--frames", type=int, default=None, help="frames per clip and sample (default: frames trained with)")
    p.add_argument("--steps", type=int, default=25, help="sampling steps (DDIM)")
    p.add_argument("--guidance-scale", type=float, default=3.0)
    p.add_argument("--free-init", type=int, default=None, metavar="N",
                   help="FreeInit for the video model's samples: each sampled N times (as `sample --free-init`)")
    p.add_argument("--eta", type=float, default=0.0,
                   help="DDIM's fresh noise per step for all samples, drawn like the starting noise (as `sample --eta`)")
    p.add_argument("--clips", type=int, default=32, help="held-out clips for the loss and the real motion statistics")
    p.add_argument("--buckets", type=int, default=5, help="timestep buckets over the training timesteps")
    p.add_argument("--control", nargs="+", default=[], metavar="RUN",
                   help="other runs on the same base whose held-out loss goes beside this run's (e.g. a capacity "
                        "control trained with temporal kernel 1 and attention to each frame alone)")
    p.add_argument("--ego-prompt", default=None, help="prompt for the ego-motion check (default: the driving "
                   "scene's caption when the cache has it)")
    p.add_argument("--caption", default="", help="caption for --data videos without a sidecar .txt")
    p.add_argument("--clip", default=None, metavar="PATH", help="local CLIP model folder: adds the CLIP score")
    p.add_argument("--fvd", default=None, metavar="PATH",
                   help="local I3D TorchScript file (i3d_torchscript.pt): adds the FVD of samples vs held-out clips")
    p.add_argument("--device", default="auto")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sdvideo", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_add_prepare, _add_train, _add_sample, _add_interpolate, _add_demo, _add_eval, _add_export):
        add(sub)
    return parser


def train_options(args: argparse.Namespace) -> dict[str, Any]:
    """CLI flags -> the keyword arguments of `TrainConfig` (the temporal-layer flags in `temporal`)."""
    from .options import values_for
    from .training.config import TemporalOptions, TrainConfig

    return {**values_for(TrainConfig, args), "temporal": values_for(TemporalOptions, args)}


def run_prepare(args: argparse.Namespace) -> int:
    from .data.prepare import check_prepare_options, prepare
    from .data.scenes import DEFAULT_SCENE_THRESHOLD
    from .models.base import load_base

    threshold = DEFAULT_SCENE_THRESHOLD if args.scene_threshold is None else args.scene_threshold
    check_prepare_options(args.videos, args.out, fps=args.fps, size=args.size, batch_size=args.batch_size,
                          scene_threshold=threshold, clip_frames=args.clip_frames, workers=args.workers,
                          shard_mb=args.shard_mb)  # before the base model loads
    base = load_base(args.base)
    summary = prepare(
        args.videos, args.out, base, fps=args.fps, size=args.size, caption=args.caption,
        batch_size=args.batch_size, overwrite=args.overwrite, scene_threshold=threshold,
        clip_frames=args.clip_frames, workers=args.workers, shard_mb=args.shard_mb, device=args.device,
        progress=not args.no_progress,
    )
    print(summary.line())
    if summary.used == 0:  # nothing usable: the only failing exit (skipped videos alone are not)
        print(f"sdvideo prepare: error: no usable video in {' '.join(args.videos)}; see the warnings above",
              file=sys.stderr)
        return 1
    return 0


def run_train(args: argparse.Namespace) -> int:
    from .training.config import TrainConfig

    config = TrainConfig(**train_options(args))
    if args.dry_run:
        from .training.dry_run import describe

        print(describe(config))
        return 0
    from .training.train import train

    result = train(config)
    if int(os.environ.get("RANK", "0")) == 0:  # under `accelerate launch`, one summary line, not one per process
        print(f"trained {result['steps']} steps in {result['seconds']:.0f} s; final loss {result['final_loss']:.4f}; "
              f"model in {Path(args.out) / 'unet'}")
    return 0


def run_sample(args: argparse.Namespace) -> int:
    from .sampling.sample import read_prompts, sample

    prompts = list(args.prompt) + (read_prompts(args.prompts_file) if args.prompts_file else [])
    size, height, width = parse_size(args.size)
    result = sample(
        args.run, prompts, args.out, frames=args.frames, steps=args.steps,
        guidance_scale=args.guidance_scale, negative_prompt=args.negative_prompt,
        seed=args.seed[0] if len(args.seed) == 1 else args.seed, fps=args.fps, size=size,
        scheduler=args.scheduler, device=args.device, height=height, width=width,
        window=args.window, overlap=args.overlap, shift_windows=args.shift_windows, extend=args.extend,
        context_frames=args.context_frames, image=args.image, condition_method=args.condition,
        batch_size=args.batch_size, decode_chunk_size=args.decode_chunk, compile=args.compile,
        cuda_graphs=args.cuda_graphs, base=args.base, free_init=args.free_init, eta=args.eta,
    )
    for f in result["files"]:
        print(f)
    return 0


def parse_size(text: str | None) -> tuple[int | None, int | None, int | None]:
    """`--size` N or WxH -> (size, height, width): (N, None, None), (None, H, W), or all None when not given."""
    from .checks import check_int

    if text is None:
        return None, None, None
    parts = text.lower().replace(" ", "").split("x")
    if len(parts) not in (1, 2) or not all(p.isdigit() for p in parts):
        raise ValueError(f"--size must be N or WxH in pixels (e.g. 512 or 768x432), got {text!r}")
    for value in parts:
        check_int("--size", int(value), 1, hint=" (N or WxH in pixels, e.g. 512 or 768x432)")
    if len(parts) == 1:
        return int(parts[0]), None, None
    return None, int(parts[1]), int(parts[0])


def run_interpolate(args: argparse.Namespace) -> int:
    from .sampling.sample import interpolate_video

    result = interpolate_video(
        args.run, args.video, args.out, factor=args.factor, prompt=args.prompt, steps=args.steps,
        guidance_scale=args.guidance_scale, seed=args.seed, input_fps=args.fps, size=args.size,
        scheduler=args.scheduler, device=args.device, window=args.window, overlap=args.overlap,
        condition_method=args.condition, compile=args.compile, cuda_graphs=args.cuda_graphs, base=args.base,
    )
    for f in result["files"]:
        print(f)
    return 0


def run_export(args: argparse.Namespace) -> int:
    from .export import export_run

    result = export_run(args.run, args.out, format=args.format, dtype=args.dtype)
    use = result.use or f"sample it with `sdvideo sample --run {result.path} --base BASE ...`"
    print(f"{result.line()}; {use}")
    return 0


def run_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo as demo

    demo(args.out, quick=args.quick)
    return 0


def run_eval(args: argparse.Namespace) -> int:
    from .eval.evaluate import evaluate

    metrics = evaluate(
        args.run, args.data, args.out, prompts=args.prompts, seeds=args.seeds, samples=args.samples,
        frames=args.frames, steps=args.steps, guidance_scale=args.guidance_scale, clips=args.clips,
        buckets=args.buckets, ego_prompt=args.ego_prompt, caption=args.caption, clip_model=args.clip, fvd_model=args.fvd,
        controls={f"control {Path(c).name}": c for c in args.control}, device=args.device, progress=True,
        free_init=args.free_init, eta=args.eta,
    )
    losses, motion = metrics["losses"], metrics["motion"]
    diff = losses["differences"]["video vs independent"]
    print(f"held-out loss: video {losses['video/mean']:.4f}, frames independent {losses['independent/mean']:.4f} "
          f"({100 * diff['relative']:+.1f}%, {diff['confidence']:.0%} interval of the difference "
          f"[{diff['mean_ci'][0]:+.4f}, {diff['mean_ci'][1]:+.4f}] over {losses['clips']} clips), "
          f"base {losses['base/mean']:.4f}; warping error real {motion['real']['warp_error']:.4f}, video "
          f"{motion['video']['warp_error']:.4f}, independent {motion['independent']['warp_error']:.4f}")
    print(Path(args.out) / "report.md")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.set_verbosity_error()  # keep the terminal to progress bars and our own lines
    handlers = dict(prepare=run_prepare, train=run_train, sample=run_sample, interpolate=run_interpolate,
                    demo=run_demo, eval=run_eval, export=run_export)
    try:
        return handlers[args.command](args)
    except (FileNotFoundError, ValueError) as err:  # bad input: one line, no traceback
        print(f"sdvideo {args.command}: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # the machine, not the code: disk full, permissions, a file where a folder goes
        print(f"sdvideo {args.command}: error: {os_error_line(err, args.command, getattr(args, 'out', None))}",
              file=sys.stderr)
        return 2
    except Exception as err:  # native writers (safetensors, torch) report a full disk in their own exceptions
        full = _disk_full(err)
        if full is None:
            raise  # anything else is a bug: keep the traceback
        print(f"sdvideo {args.command}: error: {os_error_line(full, args.command, getattr(args, 'out', None))}",
              file=sys.stderr)
        return 2


# What to do after a full disk, by command (default: free space and run it again).
AFTER_DISK_FULL = {
    "train": "free space and run it again with --resume (the run can be resumed from its last checkpoint)",
    "prepare": "free space and run it again (videos already in the cache are kept, not encoded again)",
}


def os_error_line(err: OSError, command: str, out: str | None) -> str:
    """One line for an OSError: what went wrong, on which path, and what to do about it."""
    path = err.filename if err.filename is not None else out
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        fix = AFTER_DISK_FULL.get(command, "free space and run it again")
        return f"disk full while writing {path or 'the output'}: {fix}"
    under_out = out is not None and path is not None and _is_under(path, out)
    fix = "choose another --out" if under_out else "check the path and its permissions"
    if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        why = " (read-only file system)" if err.errno == errno.EROFS else ""
        return f"permission denied: {path}{why}; {fix}"
    if err.errno in (errno.ENOTDIR, errno.EEXIST) and path is not None:
        blocker = _file_in_the_way(path)
        if blocker is not None:
            if out is not None and blocker == Path(out).expanduser():
                return f"--out {out} is a file; pass a folder (new or existing) instead"
            return f"{blocker} is a file, not a folder (writing {path}); move it away or {fix}"
    if err.errno == errno.ELOOP:
        return f"{path}: symbolic link loop (the link points back to itself); fix the link or pass another path"
    if err.filename is None:  # e.g. Pillow's "cannot identify image file ...": its message says it all
        return str(err) or type(err).__name__
    return f"{err.strerror or err}: {err.filename}" + (f" -> {err.filename2}" if err.filename2 else "")


def _disk_full(err: BaseException) -> OSError | None:
    """An OSError(ENOSPC) for an exception that says the disk is full (itself, a cause, or a native
    writer's message); None for anything else."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
            return err
        if "No space left on device" in str(err) or "StorageFull" in str(err):
            return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        err = err.__cause__ or err.__context__
    return None


def _is_under(path: str | os.PathLike, folder: str | os.PathLike) -> bool:
    p, f = Path(path).expanduser().absolute(), Path(folder).expanduser().absolute()
    return p == f or f in p.parents


def _file_in_the_way(path: str | os.PathLike) -> Path | None:
    """The first of `path` and its parents that exists and is not a folder."""
    p = Path(path).expanduser()
    for where in (p, *p.parents):
        if where.exists() or where.is_symlink():
            return None if where.is_dir() else where
    return None


if __name__ == "__main__":
    sys.exit(main())
