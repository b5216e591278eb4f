"""Check the bf16 training and inference paths against an fp32 reference, the fused Triton attention included.

    python bench/check_bf16_training.py --json /tmp/bf16.json            # CUDA: experiment.py's model, 8 and 16 frames
    python bench/check_bf16_training.py --device cpu                     # CPU: tiny preset, bf16 autocast, eager
    TRITON_INTERPRET=1 python bench/check_bf16_training.py --device cpu  # CPU, fused kernels in Triton's interpreter

Model: `build_base` (CUDA: bench/experiment.py's SIZES["full"]) + `inflate`, every temporal parameter perturbed (seeded)
so that the temporal layers are not identities and gradients pass through the attention over frames. Reference: fp32,
eager, TF32 off, fused kernel off (`enable_fast_training` with no device for it: rotary + SDPA as tensor ops). All
variants get the same latents, text, noise and timesteps (`diffusion_loss`, seeded generator). Training as `sdvideo
train` builds it on a GPU (train.py): `enable_fast_training()`, temporal layers trainable in fp32, frozen weights cast
to bf16, bf16 autocast, a checkpointing level, `compile_regions("layers")` (channels-last) when compiled. Inference as
`sdvideo sample` runs it: `enable_fast_inference()`, no_grad, eval, weights in bf16 (fp16 for the guided pair),
channels-last (frame-major temporal tokens), eager and compiled, time on and off.
Reported: ||out - ref|| / ||ref||, |loss - ref| / ref, gradient relative error and cosine per parameter group, fused
kernel launches forward/backward (counted at the Triton launch, so in compiled graphs too). FAIL (exit 1): a NaN or
inf, a relative error over 5e-2 or a cosine under 0.99 (output, loss, gradient groups in CHECKED), the fused kernel
unused where it should run, or an exception. A variant starts only while its usual time is left of --budget seconds,
else it is skipped; --json is rewritten after every variant.
"""

from __future__ import annotations

import argparse
import ast
import copy
import json
import math
import sys
import time
import traceback
from contextlib import contextmanager
from pathlib import Path

import diffusers
import torch
import torch._dynamo
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from sdvideo.fast.cudnn_benchmark import benchmark_cudnn_algorithms  # noqa: E402
from sdvideo.models import fused_frame_attention as ffa  # noqa: E402
from sdvideo.models.base import build_base  # noqa: E402
from sdvideo.models.video_unet import inflate  # noqa: E402
from sdvideo.training.diffusion_loss import diffusion_loss  # noqa: E402

GROUPS = {"to_qkv": ".to_qkv.", "to_out": ".temporal.to_out.", "conv": ".temporal.conv.", "ff": ".temporal.ff.",
          "norm": ".temporal.norm_", "fps": ".fps_embedding."}  # substrings of the temporal parameters' names
# Held to MAX_REL and MIN_COS. The LayerNorms' gradients (sums over every token, mostly cancelling) come out of bf16
# several times less accurate than the others; they and the fps embedding's are reported, and must be finite.
CHECKED = ("all", "to_qkv", "to_out", "conv", "ff")
SHOWN = (*CHECKED, "norm")  # in the table
MAX_REL, MIN_COS = 5e-2, 0.99
EAGER_TIME, COMPILE_TIME = 10.0, 60.0  # seconds a variant needs left of --budget to start
HEADER = (f"{'variant':28} {'f':>2} {'out':>8} {'loss':>8} " + " ".join(f"{g + ' rel/cos':>15}" for g in SHOWN)
          + f" {'fused f/b':>9} {'s':>5}  status")


def experiment_size() -> dict:
    """bench/experiment.py's SIZES["full"], read without importing it (it imports the data and eval stacks)."""
    tree = ast.parse((Path(__file__).parent / "experiment.py").read_text())
    node = next(n.value for n in tree.body if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "SIZES")
    expr = ast.fix_missing_locations(ast.Expression(node))
    return eval(compile(expr, "experiment.py", "eval"), {"__builtins__": {}, "dict": dict})["full"]


def temporal_named(model) -> dict[str, torch.nn.Parameter]:
    ids = {id(p) for p in model.temporal_parameters()}
    return {n: p for n, p in model.named_parameters() if id(p) in ids}


def perturb_temporal(model, seed: int) -> None:
    """Seeded noise on every temporal parameter: matrices 1 / sqrt(fan-in) for to_qkv (q, k at about unit scale: the
    attention over frames is far from uniform), 0.3 / sqrt(fan-in) for the others (the zero output projections, the
    Dirac temporal convs); vectors (norms, biases) 0.05."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in temporal_named(model).items():
            scale = (1.0 if ".to_qkv." in name else 0.3) / math.sqrt(p[0].numel()) if p.ndim > 1 else 0.05
            p.add_(torch.randn(p.shape, generator=g) * scale)


class LaunchCounter:
    """Counts a Triton kernel's launches, `kernel[grid](...)`. The kernels run inside opaque custom ops whose Python
    bodies look them up in the module at each call, so launches from compiled graphs count too."""

    def __init__(self, kernel) -> None:
        self.kernel, self.count = kernel, 0

    def __getitem__(self, grid):
        self.count += 1
        return self.kernel[grid]


COUNTERS: list[LaunchCounter] = []  # the fused forward and backward kernels', once main() wrapped them


def launches(reset: bool = False) -> list[int]:
    for c in COUNTERS if reset else []:
        c.count = 0
    return [c.count for c in COUNTERS]


# Where the fused Triton attention runs: CUDA, and the CPU through Triton's interpreter (as the tests run it).
FUSED_DEVICES = set(ffa.DEVICES) | ({"cpu"} if ffa.INTERPRETED else set())


@contextmanager
def exact_fp32():
    """No TF32 in matmuls and cuDNN."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = False, False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def training_model(master, device, level: str = "none", half: bool = True, compiled: bool = False, fused: bool = True):
    """As train.py builds it: fast training paths (`fused` False: the tensor-op temporal attention instead of the
    Triton kernel), image model frozen, checkpointing level, frozen weights in bf16, moved, compiled."""
    model = copy.deepcopy(master).enable_fast_training(devices=FUSED_DEVICES if fused else ()).freeze_spatial()
    model.set_gradient_checkpointing(level)
    for p in model.parameters():
        if half and not p.requires_grad:
            p.data = p.data.to(torch.bfloat16)
    model.to(device)
    benchmark_cudnn_algorithms(device)
    return (model.compile_regions(regions="layers") if compiled else model).train()


def inference_model(master, device, dtype, compiled: bool = False):
    """As `sdvideo sample` runs it: every fast path for sampling (the fused attention where it runs), then moved."""
    model = copy.deepcopy(master).enable_fast_inference()
    model.enable_fast_training(["fused-frame-attention"], devices=FUSED_DEVICES)
    model = model.to(device, dtype).eval()
    return model.compile_regions(regions="layers") if compiled else model.to_channels_last()


def train_step(model, inputs: dict, scheduler, seed: int, autocast: bool) -> dict:
    seen = {}

    def predict(noisy, t):
        seen.update(noisy=noisy, t=t, out=model(noisy, t, inputs["text"], fps=inputs["fps"]).sample)
        return seen["out"]

    model.zero_grad(set_to_none=True)
    launches(reset=True)
    device = inputs["latents"].device
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):  # train.py's accelerator.autocast()
        loss = diffusion_loss(predict, scheduler, inputs["latents"], torch.Generator(device).manual_seed(seed))
        loss.backward()
    grads = {n: (p.grad if p.grad is not None else torch.zeros_like(p)).detach().float().clone()
             for n, p in temporal_named(model).items()}
    return dict(loss=loss.item(), out=seen["out"].detach().float(), noisy=seen["noisy"], t=seen["t"], grads=grads,
                launches=launches())


def infer(model, x: dict, dtype, enable_time: bool = True, guided: bool = False) -> dict:
    launches(reset=True)
    with torch.no_grad():
        out = model(x["noisy"].to(dtype), x["t"], x["text"].to(dtype), fps=x["fps"], enable_time=enable_time,
                    guidance_pair=guided).sample
    return dict(out=out.float(), launches=launches())


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double(), b.double()
    return (torch.linalg.vector_norm(a - b) / torch.linalg.vector_norm(b)).item()


def compare(res: dict, ref: dict) -> dict:
    row = dict(out_rel=rel(res["out"], ref["out"]))
    if "grads" in res:
        row["loss_rel"] = abs(res["loss"] - ref["loss"]) / abs(ref["loss"])
        for group in ("all", *GROUPS):
            names = [n for n in ref["grads"] if group == "all" or GROUPS[group] in n]
            if names:
                a, b = (torch.cat([g[n].flatten() for n in names]).double() for g in (res["grads"], ref["grads"]))
                row[f"{group}_rel"], row[f"{group}_cos"] = rel(a, b), F.cosine_similarity(a, b, dim=0).item()
    return row


def problems(row: dict, expect: list[bool]) -> list[str]:
    """What makes a row FAIL; `expect`: whether the fused kernel's forward and backward should have run."""
    found = [f"{k} = {v}" for k, v in row.items() if isinstance(v, float) and not math.isfinite(v)]
    for group in ("out", "loss", *CHECKED):
        if row.get(f"{group}_rel", 0) > MAX_REL:
            found.append(f"{group}_rel {row[f'{group}_rel']:.2e} > {MAX_REL}")
        if row.get(f"{group}_cos", 1) < MIN_COS:
            found.append(f"{group}_cos {row[f'{group}_cos']:.5f} < {MIN_COS}")
    return found + [f"fused {kind} launches: {n}, expected {'some' if want else 'none'}"
                    for kind, n, want in zip(("forward", "backward"), row["fused"], expect) if (n > 0) != want]


def format_row(row: dict) -> str:
    cells = [f"{row[k]:8.1e}" if k in row else f"{'-':>8}" for k in ("out_rel", "loss_rel")]
    cells += [f"{row[f'{g}_rel']:7.1e}/{row[f'{g}_cos']:7.5f}" if f"{g}_rel" in row else f"{'-':>15}" for g in SHOWN]
    fused = "/".join(map(str, row.get("fused", []))) or "-"
    return (f"{row['variant']:28} {row['frames']:>2} {' '.join(cells)} {fused:>9} {row.get('seconds', 0):5.1f}  "
            f"{row['status']}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto")
    p.add_argument("--size-preset", choices=("experiment", "tiny", "demo"), default=None,
                   help="experiment: bench/experiment.py's SIZES['full'] (default on CUDA); tiny: default on the CPU")
    p.add_argument("--frames", type=int, nargs="+", default=None, help="default: 8 16 on CUDA, 4 on the CPU")
    p.add_argument("--batch", type=int, default=None, help="default: the experiment's on CUDA, 2 on the CPU")
    p.add_argument("--checkpointing", nargs="*", default=["light-1", "selective-2", "full"], help="eager bf16 levels")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None, help="default: on CUDA only")
    p.add_argument("--compile-frames", type=int, nargs="+", default=None,
                   help="frame counts of the compiled variants (each compiles anew); default: the first of --frames")
    p.add_argument("--compile-levels", nargs="+", default=["none"], help="checkpointing levels of compiled training")
    p.add_argument("--budget", type=float, default=150.0, help=f"seconds from the start (imports not counted): a "
                   f"variant starts only while {COMPILE_TIME:.0f} s (compiled) or {EAGER_TIME:.0f} s (eager) are left")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None, help="write every number here")
    args = p.parse_args(argv)
    start = time.time()
    device = torch.device(args.device if args.device != "auto" else "cuda" if torch.cuda.is_available() else "cpu")
    cuda = device.type == "cuda"
    for name in ("_forward_kernel", "_backward_kernel") if ffa.HAVE_TRITON else ():
        COUNTERS.append(LaunchCounter(getattr(ffa, name)))
        setattr(ffa, name, COUNTERS[-1])
    preset = args.size_preset or ("experiment" if cuda else "tiny")
    size = experiment_size() if preset == "experiment" else None
    batch = args.batch or (size["batch"] if size else 8 if cuda else 2)
    frame_counts = args.frames or ([size["frames"] if size else 8, 16] if cuda else [4])
    compiled = (args.compile_frames or frame_counts[:1]) if (cuda if args.compile is None else args.compile) else []
    if not set(compiled) <= set(frame_counts):
        raise SystemExit(f"--compile-frames {compiled}: each must be one of --frames {frame_counts}")
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 256)
    diffusers.utils.logging.set_verbosity_error()  # `.to(dtype)` of a ModelMixin warns about fp32 modules (none here)

    torch.manual_seed(args.seed)
    base = build_base("demo" if size else preset, seed=args.seed, overrides=size["overrides"] if size else None)
    master = inflate(base.unet)  # VideoUNet's defaults: train.py's with no --temporal options
    perturb_temporal(master, args.seed + 1)
    ucfg, scheduler, latent = master.unet.config, base.scheduler, master.unet.config.sample_size
    info = dict(device=torch.cuda.get_device_name() if cuda else "cpu", torch=torch.__version__, preset=preset,
                batch=batch, frames=frame_counts, compiled_frames=compiled, latent=latent, max_rel=MAX_REL,
                min_cos=MIN_COS, parameters=master.format_parameter_summary(),
                fused_kernel=bool(COUNTERS) and device.type in FUSED_DEVICES, triton_interpreter=ffa.INTERPRETED)
    print(json.dumps(info) + "\n" + HEADER, flush=True)
    rows, refs = [], {}

    def record(name: str, frames: int, ref: dict, run, expect=(1, 1)) -> None:
        row = dict(variant=name, frames=frames, status="skipped (--budget)")
        t0, graphs = time.time(), torch._dynamo.utils.counters["stats"]["unique_graphs"]
        if t0 - start + (COMPILE_TIME if "compiled" in name else EAGER_TIME) <= args.budget:
            try:
                res = run()
                row.update(compare(res, ref), fused=res["launches"])
                if "compiled" in name:
                    row["compiled_graphs"] = torch._dynamo.utils.counters["stats"]["unique_graphs"] - graphs
                found = problems(row, [bool(want) and info["fused_kernel"] for want in expect])
                row["status"] = "FAIL: " + "; ".join(found) if found else "ok"
            except Exception as err:  # noqa: BLE001 -- this variant fails; the others still run
                traceback.print_exc()
                row["status"] = f"FAIL: {type(err).__name__}: {err}"[:300]
            row["seconds"] = round(time.time() - t0, 1)
        rows.append(row)
        print(format_row(row), flush=True)
        if args.json:
            Path(args.json).write_text(json.dumps(dict(info, rows=rows), indent=1) + "\n")
        if cuda:
            torch.cuda.empty_cache()

    bf16, fp16 = torch.bfloat16, torch.float16
    for f in frame_counts:  # the reference, then every eager variant
        g = torch.Generator().manual_seed(args.seed + f)
        inputs = dict(latents=torch.randn(batch, ucfg.in_channels, f, latent, latent, generator=g).to(device),
                      text=torch.randn(batch, 77, ucfg.cross_attention_dim, generator=g).to(device),
                      fps=torch.full((batch,), float(size.get("fps", 10.0) if size else 10.0), device=device))
        with exact_fp32():
            model = training_model(master, device, half=False, fused=False)
            ref = train_step(model, inputs, scheduler, args.seed, autocast=False)
            x = dict(noisy=ref["noisy"], t=ref["t"], text=inputs["text"], fps=inputs["fps"])
            h = batch // 2  # a guidance pair: the first half's videos twice, with both halves' texts
            pair = dict(noisy=ref["noisy"][:h].repeat(2, 1, 1, 1, 1), t=ref["t"][:h].repeat(2),
                        text=x["text"][:2 * h], fps=x["fps"][:2 * h])
            model.eval()
            r = refs[f] = dict(train=ref, inputs=inputs, x=x, on=infer(model, x, torch.float32),
                               off=infer(model, x, torch.float32, enable_time=False),
                               guided=infer(model, pair, torch.float32) if h else None)
            del model
        used = [n for res in (ref, r["on"], r["guided"] or r["on"]) for n in res["launches"]]
        if any(used):
            raise SystemExit(f"the reference ran the fused kernel ({used} launches): it must take the tensor-op path")
        with exact_fp32():
            record("train fp32 fused", f, ref, lambda: train_step(
                training_model(master, device, half=False), inputs, scheduler, args.seed, autocast=False))
        for level in ["none", *args.checkpointing]:
            record(f"train bf16 {level}", f, ref, lambda: train_step(
                training_model(master, device, level), inputs, scheduler, args.seed, autocast=True))
        record("infer bf16 CL", f, r["on"], lambda: infer(inference_model(master, device, bf16), x, bf16), (1, 0))
        record("infer bf16 CL time off", f, r["off"], lambda: infer(
            inference_model(master, device, bf16), x, bf16, enable_time=False), (0, 0))
        if h:
            record("infer fp16 CL guided pair", f, r["guided"], lambda: infer(
                inference_model(master, device, fp16), pair, fp16, guided=True), (1, 0))
    for f in compiled:  # compiled variants last: they take the longest (compiling)
        r = refs[f]
        for level in args.compile_levels:
            torch._dynamo.reset()
            record(f"train bf16 compiled {level}", f, r["train"], lambda: train_step(
                training_model(master, device, level, compiled=True), r["inputs"], scheduler, args.seed, autocast=True))
        torch._dynamo.reset()
        model = inference_model(master, device, bf16, compiled=True)  # compiles at its first call
        record("infer bf16 compiled", f, r["on"], lambda: infer(model, r["x"], bf16), (1, 0))
        record("infer bf16 compiled time off", f, r["off"], lambda: infer(
            model, r["x"], bf16, enable_time=False), (0, 0))
        del model

    print("\n" + HEADER + "\n" + "\n".join(format_row(row) for row in rows))
    failed = sum(row["status"].startswith("FAIL") for row in rows)
    skipped = sum(row["status"].startswith("skipped") for row in rows)
    print(f"{len(rows)} variants: {failed} FAIL, {skipped} skipped; {time.time() - start:.0f} s", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
