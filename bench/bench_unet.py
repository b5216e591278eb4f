"""Training and sampling speed of video UNets at the real Stable Diffusion 1.5 size, side by side.

Models (random weights, bf16 autocast, fp32 master weights for what trains):
  sdvideo     SD 1.5 UNet inflated with sdvideo's temporal conv + attention, spatial frozen
              (frozen weights stored in bf16, as `sdvideo train` does)
  sdvideo-animatediff
              the same VideoUNet with `temporal_layers="animatediff"`: diffusers' AnimateDiff motion modules
              placed as UNetMotionModel places them (`motion_modules.py`), built like sdvideo. Its checkpointing
              levels: none; blocks (diffusers' block checkpointing); full (blocks + motion modules recomputed);
              every other name (temporal, attention, selective-N, light-N, light-1+K) recomputes the motion
              modules, so e.g. its compiled-light-1+2-cl-blocks = compiled-ckpt-temporal-cl-blocks.
  animatediff diffusers UNetMotionModel: SD 1.5 + default MotionAdapter, spatial frozen
  modelscope  diffusers UNet3DConditionModel (cross_attention_dim=1024, attention_head_dim=64),
              spatial frozen (temporal convs, temporal attention and transformer_in train)

    python bench/bench_unet.py --json out.json            # all models, all cases (needs a GPU)
    python bench/bench_unet.py --models sdvideo --cases 2x16 --variants eager,compiled
    python bench/bench_unet.py --models sdvideo-animatediff --lora-rank 8 --variants compiled-ckpt-full-cl-blocks
    python bench/bench_unet.py --tiny --models sdvideo-animatediff --lora-rank 4 --cases 1x4   # CPU smoke check

--lora-rank R (sdvideo models): peft LoRA adapters of rank R on the temporal layers' Linears
(`training/lora.add_temporal_lora`), as `sdvideo train --lora-rank R` builds them: only the adapters train; the
frozen temporal weights stay fp32 (spatial ones bf16). Every row records its lora_rank (0 for the peers).
--tiny: the "tiny" preset (presets.py) on the CPU, one warm-up and one step, no sampling: a smoke check that the
models, variants and rows build and train (no timing or memory claims; peak_gib is NaN there).

Reports per case: median training step time (optimizer step included), peak allocated memory,
frames/s, trainable parameters, forward FLOPs (torch.utils.flop_counter) and FLOP utilisation
(3 x forward FLOPs / step time / measured dense bf16 matmul rate); and the time to sample one
16-frame video with 25 steps and classifier-free guidance (UNet only, and with VAE decode).
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import gc
import json
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from gpu_timing import counting_tangent_copies, emit as emit_row, kernel_profile  # noqa: E402
from gpu_turns import GpuTurns, add_turns_arguments, run_in_turns  # noqa: E402
from sdvideo.models.presets import preset  # noqa: E402

GiB = 1024**3

# Where and at what size the models run: the GPU at SD 1.5's size (512 px: 64 x 64 latents), or with --tiny the
# CPU at the "tiny" preset's (`configure`).
DEVICE, PRESET, LATENT = "cuda", "sd15", 64


def configure(tiny: bool) -> None:
    global DEVICE, PRESET, LATENT
    DEVICE, PRESET, LATENT = ("cpu", "tiny", preset("tiny")["unet"]["sample_size"]) if tiny else ("cuda", "sd15", 64)


def _cuda() -> bool:
    return DEVICE == "cuda"


def _synchronize() -> None:
    if _cuda():
        torch.cuda.synchronize()


def _free_memory() -> None:
    gc.collect()
    if _cuda():
        torch.cuda.empty_cache()


def text_dim(name: str) -> int:
    """The text embeddings' width a model takes: SD 1.5's 768 (ModelScope 1024), or the tiny preset's."""
    return preset(PRESET)["unet"]["cross_attention_dim"] if PRESET != "sd15" else TEXT_DIM[name]


def matmul_peak(dtype=torch.bfloat16, sizes: tuple[int, ...] = (8192, 12288, 16384), iters: int = 30) -> float:
    """Measured dense matmul rate (FLOP/s) on this GPU: the best of square matmuls of a few sizes, each
    timed after a warm-up (until run 27: one size, 8192, less warm-up, 659-766 TFLOP/s on one H100 type)."""
    best = 0.0
    for n in sizes:
        a = torch.randn(n, n, device="cuda", dtype=dtype)
        b = torch.randn(n, n, device="cuda", dtype=dtype)
        for _ in range(10):
            a @ b
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(iters):
            a @ b
        end.record()
        torch.cuda.synchronize()
        best = max(best, 2 * n**3 * iters / (start.elapsed_time(end) / 1e3))
        del a, b
    return best


# ----------------------------------------------------------------------------- models
def build_sdvideo(options: dict[str, Any]) -> tuple[torch.nn.Module, Callable]:
    """sdvideo's VideoUNet as `sdvideo train` builds it (training/train.py): spatial frozen, with
    options["lora_rank"] LoRA adapters on the temporal layers alone training; frozen weights in bf16, except
    the temporal layers' own (frozen under LoRA, kept fp32 as train keeps them)."""
    from diffusers import UNet2DConditionModel

    from sdvideo.models.video_unet import inflate

    unet = UNet2DConditionModel(**preset(PRESET)["unet"])
    model = inflate(unet, **options.get("temporal", {})).freeze_spatial()
    if options.get("lora_rank"):  # only the adapters train (training/lora.py)
        from sdvideo.training.lora import add_temporal_lora

        # A LoRA run starts from trained temporal layers (--init-temporal, --init-motion): fresh ones' zeroed
        # output projections would pass no gradient back to the adapters. Small random weights stand in.
        with torch.no_grad():
            for p in model.temporal_parameters():
                if p.ndim > 1 and not p.any():
                    p.normal_(std=1e-3)
        add_temporal_lora(model, options["lora_rank"])
    temporal = {id(p) for p in model.temporal_parameters()}  # adapters included: they sit in the temporal modules
    for p in model.parameters():
        if not p.requires_grad and id(p) not in temporal:
            p.data = p.data.to(torch.bfloat16)
    model.set_gradient_checkpointing(options.get("checkpointing", "none"))
    model = model.to(DEVICE)
    fps = lambda x: torch.full((x.shape[0],), 8.0, device=x.device)  # noqa: E731
    if options.get("channels_last") and not options.get("compile"):  # compile_regions(channels_last=True) does it
        model = model.to_channels_last()  # weights, frames and so every activation
    return model, lambda m, x, t, c, **kw: m(x, t, c, fps=fps(x), **kw).sample


def build_sdvideo_animatediff(options: dict[str, Any]) -> tuple[torch.nn.Module, Callable]:
    """sdvideo's VideoUNet with AnimateDiff's motion modules (`temporal_layers="animatediff"`), as build_sdvideo."""
    return build_sdvideo({**options, "temporal": {"temporal_layers": "animatediff", **options.get("temporal", {})}})


def build_animatediff(options: dict[str, Any]) -> tuple[torch.nn.Module, Callable]:
    from diffusers import MotionAdapter, UNet2DConditionModel, UNetMotionModel

    config = preset(PRESET)["unet"]
    unet = UNet2DConditionModel(**config)
    adapter = MotionAdapter() if PRESET == "sd15" else MotionAdapter(  # the default: SD 1.5's
        block_out_channels=config["block_out_channels"], motion_layers_per_block=config["layers_per_block"],
        motion_norm_num_groups=config["norm_num_groups"])
    model = UNetMotionModel.from_unet2d(unet, adapter)
    model.freeze_unet2d_params()
    if options.get("frozen_bf16"):
        for p in model.parameters():
            if not p.requires_grad:
                p.data = p.data.to(torch.bfloat16)
    if options.get("checkpointing") == "blocks":
        model.enable_gradient_checkpointing()
    model = model.to(DEVICE)

    def call(m, x, t, c):  # diffusers >= 0.3x: the caller repeats the text per frame (as AnimateDiffPipeline does)
        return m(x, t, c.repeat_interleave(x.shape[2], dim=0)).sample

    return model, call


def build_modelscope(options: dict[str, Any]) -> tuple[torch.nn.Module, Callable]:
    from diffusers import UNet3DConditionModel

    if PRESET != "sd15":  # main() refuses --tiny with modelscope
        raise SystemExit("--tiny: the modelscope model has no tiny form here")
    model = UNet3DConditionModel(cross_attention_dim=1024, attention_head_dim=64)
    model.requires_grad_(False)
    for name, module in model.named_modules():
        if name.endswith(("temp_convs", "temp_attentions")) or name == "transformer_in":
            module.requires_grad_(True)
    return model.to(DEVICE), lambda m, x, t, c: m(x, t, c).sample


# Kernels whose launching operators a stacks profile lists: ATen's generic elementwise (copy) kernels,
# cuDNN's layout conversions, concatenations.
OWNED = r"elementwise_kernel|nchwToNhwc|nhwcToNchw|CatArray|direct_copy"
TEXT_DIM = {"sdvideo": 768, "sdvideo-animatediff": 768, "animatediff": 768, "modelscope": 1024}
BUILDERS = {"sdvideo": build_sdvideo, "sdvideo-animatediff": build_sdvideo_animatediff, "animatediff": build_animatediff,
            "modelscope": build_modelscope}
SDVIDEO_MODELS = ("sdvideo", "sdvideo-animatediff")  # VideoUNets: fast paths, --lora-rank, the memory estimate
VARIANTS = {
    "sdvideo": {
        "eager": {},
        "eager-cl": {"channels_last": True},
        "ckpt-attention": {"checkpointing": "attention"},
        "ckpt-attention-cl": {"checkpointing": "attention", "channels_last": True},
        "ckpt-full": {"checkpointing": "full"},
        "compiled": {"compile": True},
        "compiled-cl": {"compile": True, "channels_last": True},
        "compiled-ckpt-attention": {"compile": True, "checkpointing": "attention"},
        "compiled-ckpt-attention-cl": {"compile": True, "checkpointing": "attention", "channels_last": True},
        "selective": {"checkpointing": "selective"},
        "compiled-selective": {"compile": True, "checkpointing": "selective"},
        "compiled-selective-cl": {"compile": True, "checkpointing": "selective", "channels_last": True},
        "compiled-selective-1-cl": {"compile": True, "checkpointing": "selective-1", "channels_last": True},
        "compiled-selective-2-cl": {"compile": True, "checkpointing": "selective-2", "channels_last": True},
        "compiled-selective-cl-plain-conv-layout": {"compile": True, "checkpointing": "selective", "channels_last": True,
                                                    "plain_conv_layout": True},
        "compiled-selective-cl-plain-temporal-weights": {"compile": True, "checkpointing": "selective",
                                                         "channels_last": True, "plain_temporal_weights": True},
        "compiled-selective-cl-blocks": {"compile": True, "checkpointing": "selective", "channels_last": True,
                                         "regions": "blocks"},
        "compiled-selective-cl-sdpa-temporal": {"compile": True, "checkpointing": "selective", "channels_last": True,
                                                "sdpa_temporal": True},
        "compiled-cl-blocks": {"compile": True, "channels_last": True, "regions": "blocks"},
        "compiled-selective-2-cl-blocks": {"compile": True, "checkpointing": "selective-2", "channels_last": True,
                                           "regions": "blocks"},
        "compiled-ckpt-temporal": {"compile": True, "checkpointing": "temporal"},
        # Inductor's own tuning: block sizes of its generated kernels by coordinate descent, and
        # max-autotune (Triton GEMM/conv templates benchmarked against cuBLAS/cuDNN, epilogues fused).
        "compiled-cl-cdt": {"compile": True, "channels_last": True, "inductor": {"coordinate_descent_tuning": True}},
        # sampling: the CFG halves' shared layers before the text run once (`guidance_pair.py`)
        "compiled-cl-pair": {"compile": True, "channels_last": True, "sample_kwargs": {"guidance_pair": True}},
        # as before run 46: rotary tables computed inside each compiled region (fused per element)
        "compiled-cl-pair-inline-rotary": {"compile": True, "channels_last": True, "sample_kwargs": {"guidance_pair": True},
                                           "inline_rotary": True},
        "compiled-selective-2-cl-blocks-inline-rotary": {"compile": True, "checkpointing": "selective-2",
                                                         "channels_last": True, "regions": "blocks", "inline_rotary": True},
        "compiled-cl-blocks-pair": {"compile": True, "channels_last": True, "regions": "blocks",
                                    "sample_kwargs": {"guidance_pair": True}},
        "compiled-cl-blocks-pair-cdt": {"compile": True, "channels_last": True, "regions": "blocks",
                                        "sample_kwargs": {"guidance_pair": True},
                                        "inductor": {"coordinate_descent_tuning": True}},
        "compiled-cl-pair-cdt": {"compile": True, "channels_last": True, "sample_kwargs": {"guidance_pair": True},
                                 "inductor": {"coordinate_descent_tuning": True}},
        "compiled-cl-blocks-cdt": {"compile": True, "channels_last": True, "regions": "blocks",
                                   "inductor": {"coordinate_descent_tuning": True}},
        "compiled-cl-autotune": {"compile": True, "channels_last": True, "mode": "max-autotune-no-cudagraphs"},
        "compiled-cl-blocks-budget-0.5": {"compile": True, "channels_last": True, "regions": "blocks",
                                          "memory_budget": 0.5},
        "compiled-cl-blocks-budget-0.7": {"compile": True, "channels_last": True, "regions": "blocks",
                                          "memory_budget": 0.7},
        # cuDNN's algorithm choice: the product's default before run 49 (no benchmarking, cuDNN's heuristics),
        # and benchmarking every algorithm rather than the first 10 it ranks (`benchmark_limit` 0)
        "compiled-cl-pair-no-cudnn-benchmark": {"compile": True, "channels_last": True,
                                                "sample_kwargs": {"guidance_pair": True}, "cudnn": {"benchmark": False}},
        "compiled-cl-pair-cudnn-all": {"compile": True, "channels_last": True, "sample_kwargs": {"guidance_pair": True},
                                       "cudnn": {"benchmark_limit": 0}},
        "compiled-selective-2-cl-no-cudnn-benchmark": {"compile": True, "checkpointing": "selective-2",
                                                       "channels_last": True, "cudnn": {"benchmark": False}},
        "compiled-selective-2-cl-cudnn-all": {"compile": True, "checkpointing": "selective-2", "channels_last": True,
                                              "cudnn": {"benchmark_limit": 0}},
        # temporal attention as compiled tensor ops instead of the fused Triton kernel (as before run 50)
        "compiled-cl-pair-unfused": {"compile": True, "channels_last": True, "sample_kwargs": {"guidance_pair": True},
                                     "fused_frame_attention": False},
        "compiled-selective-2-cl-blocks-unfused": {"compile": True, "checkpointing": "selective-2", "channels_last": True,
                                                   "regions": "blocks", "fused_frame_attention": False},
        "compiled-cl-blocks-unfused": {"compile": True, "channels_last": True, "regions": "blocks",
                                       "fused_frame_attention": False},
        "compiled-selective-2-cl-unfused": {"compile": True, "checkpointing": "selective-2", "channels_last": True,
                                            "fused_frame_attention": False},
        # light-N: the top N levels' transformers recompute only norms, pointwise ops and the projections
        # out of the residual stream
        "compiled-light-1-cl-blocks": {"compile": True, "checkpointing": "light-1", "channels_last": True,
                                       "regions": "blocks"},
        "compiled-light-2-cl-blocks": {"compile": True, "checkpointing": "light-2", "channels_last": True,
                                       "regions": "blocks"},
        "compiled-light-2-cl": {"compile": True, "checkpointing": "light-2", "channels_last": True},
        # light-1+K: light-1 plus K of the 32 x 32 transformers (down blocks first)
        **{f"compiled-light-1+{k}-cl-blocks": {"compile": True, "checkpointing": f"light-1+{k}", "channels_last": True,
                                               "regions": "blocks"} for k in range(1, 5)},
        # AOTAutograd's partitioner picks what to recompute (cheapest first) to keep activations at
        # about half of what the compiled step without checkpointing stores.
        "compiled-budget": {"compile": True, "memory_budget": 0.5},
    },
    "sdvideo-animatediff": {},  # filled below: sdvideo's that apply, and the motion modules' levels
    "animatediff": {"eager": {}, "frozen-bf16": {"frozen_bf16": True},
                    "frozen-bf16-compiled": {"frozen_bf16": True, "compile": True}},
    "modelscope": {"eager": {}},
}
# Options that change only pseudo3d's temporal layers (sdvideo's temporal attention and convolutions): an
# animatediff VideoUNet has none, so its variants leave out those that set them.
PSEUDO3D_ONLY = ("plain_conv_layout", "plain_temporal_weights", "sdpa_temporal", "inline_rotary", "fused_frame_attention")
VARIANTS["sdvideo-animatediff"] = {
    **{name: options for name, options in VARIANTS["sdvideo"].items() if not set(options) & set(PSEUDO3D_ONLY)},
    # the animatediff design's own levels (set_gradient_checkpointing): temporal recomputes the motion modules,
    # blocks is diffusers' block checkpointing alone, full both
    "ckpt-temporal": {"checkpointing": "temporal"},
    "ckpt-blocks": {"checkpointing": "blocks"},
    "compiled-ckpt-temporal-cl-blocks": {"compile": True, "checkpointing": "temporal", "channels_last": True,
                                         "regions": "blocks"},
    "compiled-ckpt-blocks-cl-blocks": {"compile": True, "checkpointing": "blocks", "channels_last": True,
                                       "regions": "blocks"},
    "compiled-ckpt-full-cl-blocks": {"compile": True, "checkpointing": "full", "channels_last": True,
                                     "regions": "blocks"},
}
# the same levels on pseudo3d (blocks: diffusers' block checkpointing plus attention; full: that plus temporal)
VARIANTS["sdvideo"]["compiled-ckpt-full-cl-blocks"] = VARIANTS["sdvideo-animatediff"]["compiled-ckpt-full-cl-blocks"]
VARIANTS["sdvideo"]["compiled-ckpt-blocks-cl-blocks"] = VARIANTS["sdvideo-animatediff"]["compiled-ckpt-blocks-cl-blocks"]


def set_upsampling(vae: torch.nn.Module, how: str) -> None:
    """The VAE's upsamplers. subpixel: every supported `Upsample2D` as four 2 x 2 convolutions (what
    `VideoPipeline.enable_fast_inference` switches in), compiled in the form named after "subpixel-" (default
    auto); interpolate: diffusers' own nearest interpolation + 3 x 3 convolution (the baseline)."""
    from sdvideo.fast.subpixel_upsample import install_subpixel_upsamplers

    if how.startswith("subpixel"):
        install_subpixel_upsamplers(vae, how.partition("-")[2] or "auto")


FUSIONS = ("linear-gelu", "bias-after-matmul", "channel-stats-group-norm", "frame-major-tokens")


def enable_fast_paths(model: torch.nn.Module, upsample: str, fusions: str, fused_frame_attention: bool = True) -> None:
    """sdvideo's fast paths, as `sdvideo train` (`enable_fast_training`) and `sdvideo sample`
    (`enable_fast_inference`) switch them on, less those the options leave out. upsample: as `set_upsampling`.
    fusions: the inference-only paths to switch on (all, none, or a comma list of FUSIONS: linear-gelu
    (fast/fused_linear_gelu.py), bias-after-matmul (fast/bias_after_matmul.py), channel-stats-group-norm
    (fast/channel_stats_group_norm.py), frame-major-tokens (TemporalTransformer.frame_major)). The guidance
    pair comes with the sampling variants that pass guidance_pair=True (`time_sampling`)."""
    chosen = set(FUSIONS) if fusions == "all" else set() if fusions == "none" else set(fusions.split(","))
    if chosen - set(FUSIONS):
        raise SystemExit(f"--fusions: unknown {', '.join(sorted(chosen - set(FUSIONS)))}")
    training = ["lean-convs"] + (["fused-frame-attention"] if fused_frame_attention else [])
    if upsample.startswith("subpixel"):
        training.append("subpixel-upsample")
    model.enable_fast_training(training, subpixel_form=upsample.partition("-")[2] or "auto")
    model.enable_fast_inference(sorted(chosen))


def compile_regions(name: str, model: torch.nn.Module, options: dict[str, Any]) -> None:
    """Regional torch.compile: sdvideo's own method; the same block types for the peers."""
    if "memory_budget" in options:
        import torch._functorch.config

        torch._functorch.config.activation_memory_budget = options["memory_budget"]
    if "inductor" in options:  # for the rest of this process
        import torch._inductor.config

        for key, value in options["inductor"].items():
            setattr(torch._inductor.config, key, value)
    mode = {"mode": options["mode"]} if "mode" in options else {}
    if name in SDVIDEO_MODELS:
        model.compile_regions(channels_last=bool(options.get("channels_last")), regions=options.get("regions", "layers"),
                              **mode)
        if options.get("plain_conv_layout"):  # as before LeanConv2d.channels_last_io and the temporal conv's
            from sdvideo.models import temporal_conv  # output gradient layout (run 27's baseline; build it last)
            from sdvideo.models.lean_conv import LeanConv2d

            temporal_conv.gradient_in_input_layout = lambda x: x
            for module in model.modules():
                if isinstance(module, LeanConv2d):
                    module.channels_last_io = False
        if options.get("inline_rotary"):  # no tables from the call: each temporal layer computes its own
            model._rotary_keys = set()
        if options.get("sdpa_temporal"):  # as before run 40: SDPA's kernels for temporal attention when compiled
            from sdvideo.models.temporal_attention import TemporalTransformer

            for module in model.modules():
                if isinstance(module, TemporalTransformer):
                    module.short_attention_max_frames = 0
        if options.get("plain_temporal_weights"):  # as before run 29: temporal conv weights plainly contiguous
            from sdvideo.models.temporal_conv import TemporalConv

            for module in model.modules():
                if isinstance(module, TemporalConv):
                    module.conv.weight.data = module.conv.weight.data.contiguous()
        return
    import torch._dynamo
    from diffusers.models.resnet import ResnetBlock2D
    from diffusers.models.transformers.transformer_2d import Transformer2DModel

    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)
    for module in model.modules():
        if isinstance(module, (ResnetBlock2D, Transformer2DModel)) or type(module).__name__ == "AnimateDiffTransformer3D":
            module.compile()


# ----------------------------------------------------------------------------- measurements
def forward_flops(model, call, x, t, c) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), torch.autocast(DEVICE, dtype=torch.bfloat16), FlopCounterMode(display=False) as counter:
        call(model, x, t, c)
    return float(counter.get_total_flops())


def _untimed_first(turn) -> bool:
    """Whether a first (compiling) step may run outside `turn()`: only before this process's first turn.
    After it, other processes are timing, so everything this process runs on the GPU waits its turn."""
    return not getattr(turn, "passed_barrier", True)


def make_bench_optimizer(model: torch.nn.Module, name: str) -> torch.optim.Optimizer:
    """adamw: torch's fused AdamW (float32 states); adamw8bit: what `sdvideo train` builds on a GPU
    (sdvideo's fused 8-bit AdamW, a quarter of the state memory); adamw8bit-bnb, adamw8bit-torchao:
    bitsandbytes' and torchao's 8-bit AdamW, for comparison."""
    params = [p for p in model.parameters() if p.requires_grad]
    if name == "adamw":
        return torch.optim.AdamW(params, lr=1e-5, fused=True)
    if name == "adamw8bit-bnb":
        import bitsandbytes as bnb

        return bnb.optim.AdamW8bit(params, lr=1e-5, weight_decay=0.0)
    if name == "adamw8bit-torchao":
        from torchao.optim import AdamW8bit

        return AdamW8bit(params, lr=1e-5, weight_decay=0.0)
    from sdvideo.training.optim import make_optimizer

    return make_optimizer(params, name, 1e-5, 0.0, DEVICE)[0]


def time_training(model, call, x, t, c, steps: int, warmup: int, turn=contextlib.nullcontext,
                  micro_batch: int | None = None, optimizer: str = "adamw") -> dict[str, float]:
    """Median step time and peak memory; the first warm-up step (compilation) may run before `turn()`.
    micro_batch: forward and backward this many videos at a time, gradients accumulated, one optimizer step."""
    opt = make_bench_optimizer(model, optimizer)
    target = torch.randn_like(x)
    times, first = [], []
    copies: dict[str, float] = {}
    if _cuda():
        torch.cuda.reset_peak_memory_stats()
    with contextlib.ExitStack() as timed:
        for i in range(warmup + steps):
            if i == 1 and _untimed_first(turn) and _cuda():  # others may still compile beside this process: hand
                torch.cuda.empty_cache()  # back the compiling step's cached blocks before waiting (warm-up regrows them)
            if i == (1 if _untimed_first(turn) else 0):
                timed.enter_context(turn())
            if i == warmup:
                timed.enter_context(counting_tangent_copies(copies))
            if i == 1:
                print(f"[progress {time.strftime('%T')}] first training step done (compiled)", flush=True)
            _training_step(model, call, x, t, c, target, opt, times if i >= warmup else first if i == 0 else None,
                           micro_batch)
    del opt
    # first_step_s: compiling included (alone on the machine, or beside other processes' compiling)
    peak = torch.cuda.max_memory_allocated() / GiB if _cuda() else float("nan")  # no claim on the CPU
    return dict(step_s=statistics.median(times), first_step_s=first[0], peak_gib=peak,
                tangent_copies_per_step=copies.get("copies", 0) / steps,
                tangent_copy_gib_per_step=copies.get("gib", 0.0) / steps)


def _training_step(model, call, x, t, c, target, opt, times: list[float] | None, micro_batch: int | None = None) -> None:
    _synchronize()
    start = time.perf_counter()
    n = micro_batch or x.shape[0]
    for xs, ts, cs, target_s in zip(x.split(n), t.split(n), c.split(n), target.split(n)):
        with torch.autocast(DEVICE, dtype=torch.bfloat16):
            out = call(model, xs, ts, cs)
        loss = torch.nn.functional.mse_loss(out.float(), target_s) * (xs.shape[0] / x.shape[0])
        loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    _synchronize()
    if times is not None:
        times.append(time.perf_counter() - start)


def profile_training(model, call, x, t, c, path: str, turn=contextlib.nullcontext, stacks: bool = False,
                     optimizer: str = "adamw") -> None:
    """Where a training step's GPU time goes: the top kernels by CUDA time, written to `path`; with
    `stacks`, then the operators that launched them, grouped by the Python lines that called them."""
    opt = make_bench_optimizer(model, optimizer)
    target = torch.randn_like(x)
    with turn() if not _untimed_first(turn) else contextlib.nullcontext():
        _training_step(model, call, x, t, c, target, opt, None)  # compiles
    with turn():
        table = kernel_profile(lambda: _training_step(model, call, x, t, c, target, opt, None), stacks=stacks, rows=40,
                               owners=OWNED if stacks else None)
    Path(path).write_text(table)
    print(table[:6000], flush=True)


@torch.no_grad()
def time_sampling(model, call, frames: int, steps: int, vae=None, text_dim: int = 768,
                  turn=contextlib.nullcontext, profile: str | None = None, graphs: bool = False,
                  latent: int = 64, call_kwargs: dict[str, Any] | None = None) -> dict[str, float]:
    """UNet-only and end-to-end sampling time; with `graphs`, the same model also through sdvideo's
    `GraphedUNet` (CUDA graphs): its first video (recording included), the next ones, and how far its
    prediction is from the plain call's."""
    from diffusers import DDIMScheduler

    if call_kwargs:  # e.g. guidance_pair=True: the model's own options for a CFG batch
        if call_kwargs.get("guidance_pair") and hasattr(model, "enable_fast_inference"):
            model.enable_fast_inference(["guidance-pair"])  # the shared layers' hooks (`sdvideo sample` has them)
        plain_call = call
        call = lambda m, x, t, c: plain_call(m, x, t, c, **call_kwargs)  # noqa: E731
    model.to(torch.bfloat16)  # inference: every weight in bf16 (no fp32 master copies needed)
    result: dict[str, float] = {}

    sched = DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, clip_sample=False)
    text = torch.randn(2, 77, text_dim, device="cuda", dtype=torch.bfloat16)

    def run(decode: bool, unet_call) -> float:
        sched.set_timesteps(steps, device="cuda")
        lat = torch.randn(1, 4, frames, latent, latent, device="cuda")
        torch.cuda.synchronize()
        start = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            for ts in sched.timesteps:
                pred = unet_call(model, torch.cat([lat, lat]), ts, text)
                u, co = pred.float().chunk(2)
                lat = sched.step(u + 7.5 * (co - u), ts, lat).prev_sample
            if decode and vae is not None:
                flat = lat.transpose(1, 2).reshape(frames, 4, latent, latent) / 0.18215
                for chunk in flat.split(8):
                    vae.decode(chunk.to(torch.bfloat16))
        torch.cuda.synchronize()
        return time.perf_counter() - start

    with turn() if not _untimed_first(turn) else contextlib.nullcontext():
        run(vae is not None, call)  # warm-up, VAE decode included (its first call autotunes cuDNN)
    print(f"[progress {time.strftime('%T')}] sampling warmed up (compiled)", flush=True)
    with turn():
        result["sample_unet_s"] = run(False, call)
        result["sample_end_to_end_s"] = run(True, call) if vae is not None else float("nan")
        if graphs:
            from sdvideo.sampling.cuda_graphs import GraphedUNet

            graphed = GraphedUNet(lambda sample, timestep, encoder_hidden_states: _Sample(
                call(model, sample, timestep, encoder_hidden_states)))
            graphed_call = lambda m, x, t, c: graphed(x, t, c)  # noqa: E731
            # A fresh GraphedUNet's first video: its first call runs plainly, the second records the graph.
            result["sample_unet_graphs_first_video_s"] = run(False, graphed_call)
            result["sample_unet_graphs_s"] = run(False, graphed_call)
            result["sample_end_to_end_graphs_s"] = run(True, graphed_call) if vae is not None else float("nan")
            x = torch.randn(2, 4, frames, latent, latent, device="cuda")
            with torch.autocast("cuda", dtype=torch.bfloat16):
                plain, replayed = call(model, x, sched.timesteps[3], text), graphed_call(model, x, sched.timesteps[3], text)
            result["graphs_max_abs_diff"] = (plain.float() - replayed.float()).abs().max().item()
        if call_kwargs:  # how far the model's option moves one prediction (same latents in both halves)
            lat = torch.randn(1, 4, frames, latent, latent, device="cuda")
            with torch.autocast("cuda", dtype=torch.bfloat16):
                plain = plain_call(model, torch.cat([lat, lat]), sched.timesteps[3], text).float()
                option = call(model, torch.cat([lat, lat]), sched.timesteps[3], text).float()
            result["option_max_abs_diff"] = (plain - option).abs().max().item()
            result["option_max_abs_pred"] = plain.abs().max().item()
        if profile:  # one denoising step's kernels (both CFG halves in one batch)
            lat = torch.randn(2, 4, frames, latent, latent, device="cuda")
            with torch.autocast("cuda", dtype=torch.bfloat16):
                table = kernel_profile(lambda: call(model, lat, sched.timesteps[0], text), rows=80, calls=3, owners=OWNED)
            Path(profile).write_text(table)
    return result


@dataclass
class _Sample:  # what GraphedUNet reads from a model's output
    sample: torch.Tensor


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="sdvideo,animatediff,modelscope")
    ap.add_argument("--variants", default="", help="comma list of variant names to keep (default: all)")
    ap.add_argument("--cases", default="2x16,2x5,1x64", help="batch x frames (2x16/1: as micro-batches of 1, "
                    "gradients accumulated); none: sampling only")
    ap.add_argument("--steps", type=int, default=None, help="timed steps (default 6; --tiny 1)")
    ap.add_argument("--lora-rank", type=int, default=0, help="sdvideo models: LoRA adapters of this rank on the "
                    "temporal layers train alone, as `sdvideo train --lora-rank` (0: off; the peers ignore it)")
    ap.add_argument("--tiny", action="store_true", help="CPU smoke check: the tiny preset, 1 warm-up + 1 step, "
                    "default variants eager, no timing or memory claims")
    ap.add_argument("--optimizer", choices=("adamw", "adamw8bit", "adamw8bit-bnb", "adamw8bit-torchao"), default="adamw",
                    help="training step's optimizer: torch's fused AdamW, sdvideo train's 8-bit AdamW, or bitsandbytes'/torchao's")
    ap.add_argument("--upsample", choices=("subpixel", "subpixel-conv", "subpixel-matmul", "interpolate"), default="subpixel",
                    help="sdvideo's and the VAE's upsamplers: four 2 x 2 convolutions (the product's; compiled in the form "
                    "chosen per shape, or always as the convolution / the matmul) or diffusers' nearest interpolation + 3 x 3 conv")
    ap.add_argument("--fusions", default="all", help="sdvideo's inference fusions to keep on: all, none, or "
                    "a comma list of linear-gelu (the temporal feed-forward's first matmul with a GELU epilogue), "
                    "bias-after-matmul (transformer Linears' biases added in the next fused kernel), "
                    "channel-stats-group-norm (GroupNorm from per-channel statistics), frame-major-tokens (temporal "
                    "attention on channels-last maps in their own order)")
    ap.add_argument("--blas", choices=("torch", "cublaslt"), default="torch", help="matmul library for the whole "
                    "process: PyTorch's choice (cuBLAS; cuBLASLt for bias epilogues), or cuBLASLt for every matmul")
    ap.add_argument("--inductor", default="", help="inductor settings for every variant, KEY=VALUE comma list "
                    "(e.g. aggressive_fusion=True,coordinate_descent_tuning=True)")
    ap.add_argument("--warmup", type=int, default=None, help="untimed steps first (default 3; --tiny 1)")
    ap.add_argument("--sample", action="store_true", help="also time 16-frame sampling (25 steps, CFG)")
    ap.add_argument("--sample-latents", default="64", help="with --sample: latent sizes (64: 512 px), comma list")
    ap.add_argument("--sample-graphs", action="store_true", help="with --sample: also through CUDA graphs (GraphedUNet)")
    ap.add_argument("--json", default=None)
    ap.add_argument("--profile", default=None, help="write a kernel profile of the first model/case here")
    ap.add_argument("--profile-sampling", default=None, help="with --sample: write a kernel profile of the first "
                    "model's denoising step (UNet, both CFG halves) here")
    ap.add_argument("--profile-stacks", action="store_true", help="with --profile: also the launching operators' "
                    "Python call sites (slower to record)")
    add_turns_arguments(ap)
    args = ap.parse_args()
    if args.lora_rank < 0:
        raise SystemExit("--lora-rank must be 0 (off) or above")
    unknown = set(args.models.split(",")) - set(BUILDERS)
    if unknown:
        raise SystemExit(f"--models: unknown {', '.join(sorted(unknown))}; choose from {', '.join(BUILDERS)}")
    if args.tiny and "modelscope" in args.models.split(","):
        raise SystemExit("--tiny: the modelscope model has no tiny form here (--models sdvideo, sdvideo-animatediff, "
                         "animatediff)")
    if args.tiny and (args.sample or args.profile):
        raise SystemExit("--tiny times training steps only (no --sample, --profile)")
    if args.tiny and args.optimizer in ("adamw8bit-bnb", "adamw8bit-torchao"):
        raise SystemExit("--tiny: --optimizer adamw or adamw8bit (sdvideo's, which runs on the CPU)")
    args.steps = args.steps if args.steps is not None else 1 if args.tiny else 6
    args.warmup = args.warmup if args.warmup is not None else 1 if args.tiny else 3
    if args.tiny and not args.variants:
        args.variants = "eager"  # compiling on the CPU takes minutes; name compiled variants to check them
    configure(args.tiny)
    run_in_turns(run, args)


def run(args: argparse.Namespace, turns: GpuTurns) -> None:
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = True
    if args.blas == "cublaslt":  # every model of the process: a PyTorch setting the peers could use as well
        torch.backends.cuda.preferred_blas_library("cublaslt")

    peak = None  # measured in this process's first turn: the GPU is shared until then

    def measured_peak() -> float:
        nonlocal peak
        if not _cuda():  # --tiny: no FLOP utilisation on the CPU
            return float("nan")
        if peak is None:
            with turns():
                peak = matmul_peak()
            print(f"GPU: {torch.cuda.get_device_name()}, measured dense bf16 matmul {peak / 1e12:.0f} TFLOP/s", flush=True)
        return peak

    vae = None
    if args.sample:
        from diffusers import AutoencoderKL

        vae = AutoencoderKL(**preset("sd15")["vae"]).to("cuda", torch.bfloat16).eval()
        set_upsampling(vae, args.upsample)
    keep = set(filter(None, args.variants.split(",")))
    cases = [] if args.cases == "none" else args.cases.split(",")
    inductor = {k: ast.literal_eval(v) for k, v in (item.split("=", 1) for item in args.inductor.split(",") if item)}
    rows = []

    def emit(row: dict[str, Any]) -> None:  # emit_row (print, keep), then append it to the .jsonl
        emit_row(row, rows)
        if args.json:
            with open(Path(args.json).with_suffix(".jsonl"), "a") as f:
                f.write(json.dumps(row) + "\n")
    for name in args.models.split(","):
        for variant, options in VARIANTS[name].items():
            if keep and variant not in keep:
                continue
            if inductor:
                options = {**options, "inductor": {**options.get("inductor", {}), **inductor}}
            torch.manual_seed(0)
            torch._dynamo.reset()  # no compiled code or guards carried over from the previous variant
            lora_rank = args.lora_rank if name in SDVIDEO_MODELS else 0  # the peers train as they are
            if lora_rank:
                options = {**options, "lora_rank": lora_rank}
            with torch.device(DEVICE):  # initialise on the GPU: much faster than CPU init at this size
                model, call = BUILDERS[name](options)
            if name in SDVIDEO_MODELS:
                enable_fast_paths(model, args.upsample, args.fusions, options.get("fused_frame_attention", True))
            for key, value in options.get("cudnn", {}).items():  # for the rest of this process
                setattr(torch.backends.cudnn, key, value)
            trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
            total = sum(p.numel() for p in model.parameters())
            params_gib = sum(p.numel() * p.element_size() for p in model.parameters()) / GiB  # as stored (bf16 / fp32)
            flops = {}  # counted on the eager model, before any compilation (same math)
            for case in cases:
                b, f = map(int, case.split("/")[0].split("x"))
                try:
                    flops[case] = forward_flops(model, call, torch.randn(b, 4, f, LATENT, LATENT, device=DEVICE),
                                                torch.randint(0, 1000, (b,), device=DEVICE),
                                                torch.randn(b, 77, text_dim(name), device=DEVICE)) / 1e12
                except Exception:
                    flops[case] = float("nan")
                _free_memory()
            if options.get("compile"):
                compile_regions(name, model, options)
            for case in cases:
                b, f = map(int, case.split("/")[0].split("x"))
                micro = int(case.split("/")[1]) if "/" in case else None  # "2x16/1": two micro-batches of 1 x 16
                row = dict(model=name, lora_rank=lora_rank, variant=variant, case=case, trainable_M=trainable / 1e6,
                           total_M=total / 1e6, params_gib=params_gib)
                if args.tiny:
                    row["tiny"] = True  # CPU smoke check: no timing or memory claims
                if name in SDVIDEO_MODELS:
                    row["upsample"], row["fusions"] = args.upsample, args.fusions
                    row["inductor"], row["blas"] = args.inductor, args.blas
                x = torch.randn(b, 4, f, LATENT, LATENT, device=DEVICE)
                t = torch.randint(0, 1000, (b,), device=DEVICE)
                c = torch.randn(b, 77, text_dim(name), device=DEVICE)
                try:
                    if args.profile:
                        profile_training(model, call, x, t, c, args.profile, turns, args.profile_stacks, args.optimizer)
                        args.profile = None
                    row["fwd_tflop"] = flops[case]
                    row.update(time_training(model, call, x, t, c, args.steps, args.warmup, turns, micro, args.optimizer))
                    row["optimizer"] = args.optimizer
                    row["frames_per_s"] = b * f / row["step_s"]
                    row["mfu"] = 3 * row["fwd_tflop"] * 1e12 / row["step_s"] / measured_peak()
                    if name in SDVIDEO_MODELS and "memory_budget" not in options:  # how close `sdvideo train --dry-run`'s estimate comes
                        from sdvideo.training.memory_estimate import estimate_training_memory

                        temporal = {**options.get("temporal", {}),
                                    **({"temporal_layers": "animatediff"} if name == "sdvideo-animatediff" else {})}
                        try:  # the estimate's own failure must not mark the measured step as failed
                            row["estimate_gib"] = estimate_training_memory(
                                preset(PRESET)["unet"], temporal, micro or b, f, LATENT, optimizer=args.optimizer,
                                gradient_checkpointing=options.get("checkpointing", "none"),
                                compiled=bool(options.get("compile")),
                                **({"lora_rank": lora_rank} if lora_rank else {}))["total_gib"]
                        except Exception as err:
                            row["estimate_error"] = f"{type(err).__name__}: {str(err).splitlines()[0][:120]}"
                except torch.OutOfMemoryError:
                    row["error"] = "out of memory"
                except Exception as err:  # e.g. AnimateDiff's 32-frame position table
                    row["error"] = f"{type(err).__name__}: {str(err).splitlines()[0][:120]}"
                model.zero_grad(set_to_none=True)
                _free_memory()
                emit(row)
            for latent in map(int, args.sample_latents.split(",")) if args.sample else []:
                row = dict(model=name, lora_rank=lora_rank, variant=variant,
                           case="sample 16f 25 steps CFG" + ("" if latent == 64 else f" {latent * 8} px"))
                if name in SDVIDEO_MODELS:
                    row["upsample"], row["fusions"] = args.upsample, args.fusions
                    row["inductor"], row["blas"] = args.inductor, args.blas
                try:
                    row.update(time_sampling(model, call, 16, 25, vae, TEXT_DIM[name], turns, args.profile_sampling,
                                             graphs=args.sample_graphs, latent=latent,
                                             call_kwargs=options.get("sample_kwargs")))
                    args.profile_sampling = None
                except torch.OutOfMemoryError:
                    row["error"] = "out of memory"
                except Exception as err:
                    row["error"] = f"{type(err).__name__}: {str(err).splitlines()[0][:160]}"
                emit(row)
            del model
            _free_memory()
    result = dict(gpu=torch.cuda.get_device_name() if _cuda() else "cpu (--tiny)", matmul_bf16_tflops=measured_peak() / 1e12, torch=torch.__version__,
                  rows=rows)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
