"""Estimate the peak GPU memory of a training step without a GPU (for `sdvideo train --dry-run`).

The model is built on PyTorch's meta device (shapes, no data) and one forward pass is traced with
saved-tensor hooks, which see every activation autograd keeps for backward. Attention is counted as
flash attention keeps it (inputs, output and a log-sum-exp row, never the score matrix). To that come
the weights (frozen ones in half precision), gradients and optimizer states of the trainable ones,
and a transient term for the largest backward temporaries.

Eager mixed precision keeps more than the half-precision arithmetic suggests: CUDA autocast runs
norms in float32 (their float32 outputs are what SiLU and the next cast save) and gives every matmul
its own half-precision copy of a float32 input. Autocast does not run on meta tensors, so the trace
repeats its casts (`_AutocastOnMeta`). A compiled model (`--compile`) fuses those casts and norms and
recomputes them in backward, so it is traced in plain half precision.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves, tree_map
from torch.utils.checkpoint import CheckpointPolicy

from ..models.temporal_wrappers import ATTENTION_KERNELS, SavePolicy

GiB = 1024**3


class _FlashLikeAttention(torch.autograd.Function):
    """SDPA stand-in that saves what a flash kernel saves: q, k, v, output and a float32 LSE."""

    @staticmethod
    def forward(ctx, q, k, v):
        out = torch.empty_like(q.expand(*q.shape[:-1], v.shape[-1]))
        lse = torch.empty(q.shape[:-1], dtype=torch.float32, device=q.device)
        ctx.save_for_backward(q, k, v, out, lse)
        return out

    @staticmethod
    def backward(ctx, grad):  # never run: the estimate only traces the forward
        raise NotImplementedError


# CUDA autocast's lists (torch/csrc/autocast_mode.cpp), as far as a UNet calls them.
_HALF_OPS = {F.linear, F.conv1d, F.conv2d, F.conv3d, torch.matmul, torch.bmm, torch.baddbmm, torch.mm,
             torch.addmm, torch.Tensor.__matmul__, torch.einsum}
_FLOAT32_OPS = {F.group_norm, F.layer_norm, torch.softmax, F.softmax, torch.Tensor.softmax, torch.exp, torch.rsqrt}


class _AutocastOnMeta(TorchFunctionMode):
    """The dtype casts CUDA autocast would make, on meta tensors (where autocast itself is off)."""

    def __init__(self, dtype: torch.dtype):
        super().__init__()
        self.dtype = dtype
        self.weight_casts: dict[tuple[int, torch.dtype], torch.Tensor] = {}

    def cast(self, t: Any, dtype: torch.dtype) -> Any:
        if not isinstance(t, torch.Tensor) or not t.is_floating_point() or t.dtype == dtype:
            return t
        if t.is_leaf and t.requires_grad:  # autocast casts a trainable weight once per forward
            key = (id(t), dtype)
            if key not in self.weight_casts:
                self.weight_casts[key] = t.to(dtype)
            return self.weight_casts[key]
        return t.to(dtype)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        target = self.dtype if func in _HALF_OPS else torch.float32 if func in _FLOAT32_OPS else None
        if target is not None:
            args, kwargs = tree_map(lambda t: self.cast(t, target), (args, kwargs))
        return func(*args, **kwargs)


_active_autocast: list[_AutocastOnMeta] = []
_regions: list["_Region"] = []  # the trace's checkpointed regions, outermost (the whole model) first


def _sdpa(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, **_: Any):
    if _active_autocast:  # SDPA is on autocast's half-precision list too
        q, k, v = (_active_autocast[-1].cast(t, _active_autocast[-1].dtype) for t in (q, k, v))
    out = _FlashLikeAttention.apply(q, k, v)
    policy = _regions[-1].policy if _regions else None
    if policy is not None and policy.keeps_attention(k):  # selective: output and LSE kept
        _regions[0].pack(torch.empty_like(out))
        _regions[0].pack(torch.empty(q.shape[:-1], dtype=torch.float32, device=q.device))
    return out


class _StoredByPolicy(TorchDispatchMode):
    """Inside a selectively checkpointed region: the outputs of the ops its policy stores (attention
    aside, which `_sdpa` counts) are kept until backward, with the whole model's saved tensors."""

    def __init__(self, policy: SavePolicy) -> None:
        super().__init__()
        self.policy = policy

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func not in ATTENTION_KERNELS and self.policy(None, func, *args, **(kwargs or {})) == CheckpointPolicy.MUST_SAVE:
            for t in tree_leaves(out):
                if isinstance(t, torch.Tensor):
                    _regions[0].pack(t)
        return out


class _Region:
    """Saved-tensor bytes of one checkpointed region, and the largest recompute nested inside it."""

    def __init__(self, policy: SavePolicy | None = None) -> None:
        self.policy = policy  # selective checkpointing: what a recompute stores
        self.saved: dict[int, int] = {}
        self.held: list[torch.Tensor] = []  # alive until the trace ends, so no id is reused
        self.largest_child = 0

    def pack(self, t: torch.Tensor) -> torch.Tensor:
        if not isinstance(t, torch.nn.Parameter) and not isinstance(t._base, torch.nn.Parameter):
            # (parameters and views of them, e.g. a linear layer's transposed weight, count as weights)
            self.saved[id(t)] = max(self.saved.get(id(t), 0), t.numel() * t.element_size())
            self.held.append(t)
        return t

    @property
    def recompute_bytes(self) -> int:  # backward of this region holds its own tensors, then a child's
        return sum(self.saved.values()) + self.largest_child


def saved_activation_bytes(
    model: torch.nn.Module, inputs: dict[str, Any], autocast_dtype: torch.dtype | None = None
) -> tuple[int, int]:
    """Bytes of distinct tensors autograd keeps through `model(**inputs)` (meta tensors), and the
    bytes the largest checkpointed region stores again while backward recomputes it.

    Activation checkpointing is traced, not run: each region's saved tensors are counted apart (its
    inputs stay with the enclosing region, as `checkpoint` keeps them for the recompute). With
    `autocast_dtype`, the trace makes the casts CUDA autocast would make.
    """
    stack = _regions
    stack[:] = [_Region()]

    def traced_checkpoint(fn, *args, use_reentrant=None, context_fn=None, **kwargs):
        policy = context_fn.args[0] if context_fn is not None else None  # partial(contexts, policy)
        region = _Region(policy)
        stack.append(region)
        try:
            with torch.autograd.graph.saved_tensors_hooks(region.pack, lambda t: t):
                with _StoredByPolicy(policy) if policy is not None else contextlib.nullcontext():
                    out = fn(*args, **kwargs)
        finally:
            stack.pop()
        for arg in args:
            if isinstance(arg, torch.Tensor):
                stack[-1].pack(arg)
        stack[-1].largest_child = max(stack[-1].largest_child, region.recompute_bytes)
        return out

    from ..models import temporal_wrappers

    patches = [(F, "scaled_dot_product_attention", _sdpa), (torch.utils.checkpoint, "checkpoint", traced_checkpoint),
               (temporal_wrappers, "checkpoint", traced_checkpoint)]
    originals = [(obj, name, getattr(obj, name)) for obj, name, _ in patches]
    autocast = _AutocastOnMeta(autocast_dtype) if autocast_dtype is not None else None
    try:
        for obj, name, value in patches:
            setattr(obj, name, value)
        if autocast is not None:
            _active_autocast.append(autocast)
        with torch.autograd.graph.saved_tensors_hooks(stack[0].pack, lambda t: t):
            with autocast if autocast is not None else contextlib.nullcontext():
                model(**inputs)
    finally:
        for obj, name, value in originals:
            setattr(obj, name, value)
        if autocast is not None:
            _active_autocast.remove(autocast)
    outermost = stack[0]
    stack.clear()
    return sum(outermost.saved.values()), outermost.largest_child


def estimate_training_memory(
    unet_config: dict[str, Any],
    temporal: dict[str, Any],
    batch_size: int,
    frames: int,
    latent_size: int,
    text_tokens: int = 77,
    mixed_precision: str = "bf16",
    optimizer: str = "adamw8bit",
    train: str = "temporal",
    gradient_checkpointing: str = "none",
    compiled: bool = False,
    lora_rank: int = 0,
) -> dict[str, float]:
    """Peak allocated GPU memory (GiB) of one training step, and its parts.

    `lora_rank` above 0: LoRA adapters of that rank on the temporal layers train alone (`lora.py`): gradients
    and optimizer state for the adapters only; the frozen temporal weights stay float32, as `train` keeps them.

    `compiled`: the step runs `VideoUNet.compile_regions()` (fused casts and norms, traced in plain
    half precision); otherwise eager autocast is traced with its float32 norms and cast copies.
    """
    from ..models.video_unet import VideoUNet

    half = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(mixed_precision)
    emulate_autocast = half is not None and not compiled
    # Eager autocast: float32 master weights and inputs, cast by the trace. Compiled: half throughout.
    act_dtype = torch.float32 if emulate_autocast or half is None else half
    with torch.device("meta"):
        model = VideoUNet(unet_config=unet_config, **temporal).enable_fast_training()  # as `train` builds it
        if train == "temporal":
            model.freeze_spatial()
        if lora_rank:
            from .lora import add_temporal_lora

            add_temporal_lora(model, lora_rank)
        model.set_gradient_checkpointing(gradient_checkpointing)
        model.train()
        trainable = [p for p in model.parameters() if p.requires_grad]
        frozen = [p for p in model.parameters() if not p.requires_grad]
        temporal = {id(p) for p in model.temporal_parameters()}  # frozen ones (LoRA's base) stay float32
        weight_bytes = sum(p.numel() * (4 if half is None or id(p) in temporal else half.itemsize) for p in frozen)
        if half is not None:
            for p in frozen:  # the compiled trace runs in plain half precision: every weight and table in it
                if id(p) not in temporal or not emulate_autocast:
                    p.data = p.data.to(half)
            for b in model.buffers() if not emulate_autocast else ():
                if b.is_floating_point():
                    b.data = b.data.to(half)
        for p in trainable:
            p.data = p.data.to(act_dtype)
        sample = torch.empty(batch_size, unet_config.get("in_channels", 4), frames, latent_size, latent_size, dtype=act_dtype)
        text = torch.empty(batch_size, text_tokens, unet_config["cross_attention_dim"], dtype=act_dtype)
        activations, recompute = saved_activation_bytes(
            model, dict(sample=sample, timestep=torch.zeros(batch_size, dtype=torch.long), encoder_hidden_states=text,
                        fps=torch.ones(batch_size)),
            autocast_dtype=half if emulate_autocast else None,
        )
    n_train = sum(p.numel() for p in trainable)
    n_frozen = sum(p.numel() for p in frozen)
    weight_bytes += n_train * 4
    grad_bytes = n_train * 4
    # 8-bit AdamW: two 1-byte codes and, per 256 values, two float32 scales (adamw8bit.py); AdamW: two float32 moments
    # (tensors under MIN_QUANTIZED values, such as small LoRA matrices, keep float32 moments there too)
    from .adamw8bit import MIN_QUANTIZED

    optimizer_bytes = sum(p.numel() * (2 + 8 / 256 if optimizer.startswith("adamw8bit") and p.numel() >= MIN_QUANTIZED
                                       else 8) for p in trainable)
    # Backward holds a layer's input gradients and temporaries at once: about the largest single
    # activation, a few times over, on top of what forward saved and what a recompute stores again.
    itemsize = (half or torch.float32).itemsize
    largest_activation = batch_size * frames * unet_config["block_out_channels"][0] * latent_size**2 * itemsize
    transient = 4 * largest_activation
    # The peak comes early in backward (the last block's recompute, every activation still held),
    # before most gradients exist: they fill in as activations are freed. With little activation
    # memory the optimizer step, with every gradient allocated, is the peak instead.
    total = weight_bytes + optimizer_bytes + max(activations + recompute + transient, grad_bytes)
    return dict(
        total_gib=total / GiB, weights_gib=weight_bytes / GiB, gradients_gib=grad_bytes / GiB,
        optimizer_gib=optimizer_bytes / GiB, activations_gib=activations / GiB, recompute_gib=recompute / GiB,
        transient_gib=transient / GiB, trainable_params=n_train, frozen_params=n_frozen,
    )


def largest_fitting(fits: Callable[[int], bool], start: int = 1, limit: int = 4096,
                    max_trials: int | None = None) -> int:
    """The largest n in 1..limit with `fits(n)` (0 if none), for a `fits` that turns false once n is
    large enough: brackets the boundary from `start` in steps of 15 %, doubling the step each time the
    bracket is not found (so a close `start` takes a few tries), then bisects. Every n is tried once;
    with `max_trials` the search stops early and returns the largest n known to fit."""
    tried: dict[int, bool] = {}

    def trial(n: int) -> bool:
        if n not in tried:
            tried[n] = fits(n)
        return tried[n]

    def more() -> bool:
        return max_trials is None or len(tried) < max_trials

    n, step = min(max(start, 1), limit), 0.15
    fitting, failing = (n, None) if trial(n) else (0, n)
    while failing is None and n < limit and more():  # go up until something fails
        n, step = min(limit, max(n + 1, int(n * (1 + step)))), step * 2
        fitting, failing = (n, None) if trial(n) else (fitting, n)
    while fitting == 0 and n > 1 and more():  # go down until something fits
        n, step = min(n - 1, int(n / (1 + step))), step * 2
        fitting, failing = (n, failing) if trial(n) else (0, n)
    while failing is not None and failing - fitting > 1 and more():
        middle = (fitting + failing) // 2
        fitting, failing = (middle, failing) if trial(middle) else (fitting, middle)
    return fitting


# Share of a GPU's memory that the frame-count advice plans for. Measured peaks (H100 capped at 24 GiB,
# 8-bit AdamW, expandable segments for full checkpointing) ran up to 6 % above the estimate, and the
# allocator needs slack near the limit; at 92 % the most frames advised never exceed what trained, at
# 512 and 256 px and every checkpointing level measured (BENCHMARKS.md).
USABLE_SHARE = 0.92


def largest_frame_count(budget_gib: float, batch_size: int = 1, limit: int = 4096, **estimate_options: Any) -> int:
    """The most frames whose estimated training peak stays within `budget_gib` (0 if one frame
    does not fit). `estimate_options` are `estimate_training_memory`'s other arguments. AnimateDiff motion
    modules take at most their `motion_max_seq_length` frames: the count stops there."""
    temporal = estimate_options.get("temporal") or {}
    if temporal.get("temporal_layers") == "animatediff":
        limit = min(limit, int(temporal.get("motion_max_seq_length", 32)))

    def peak(frames: int) -> float:
        return estimate_training_memory(batch_size=batch_size, frames=frames, **estimate_options)["total_gib"]

    # The peak grows about linearly with the frame count: start the search where the line crosses the budget.
    low, high = peak(min(8, limit)), peak(min(32, limit))
    slope = (high - low) / max(1, min(32, limit) - min(8, limit))
    start = int(8 + (budget_gib - low) / slope) if slope > 0 else limit
    return largest_fitting(lambda frames: peak(frames) <= budget_gib, start=max(1, min(start, limit)), limit=limit)


def checkpointing_advice(
    budget_gib: float, batch_size: int, frames: int, current_gib: float | None = None, **estimate_options: Any
) -> str | None:
    """None when the estimated peak of these settings fits `budget_gib`; otherwise one line naming the
    lightest `--gradient-checkpointing` level that fits, or the frame count that fits at `full`.
    `current_gib`: these settings' estimate when the caller has it already (not traced again)."""
    current = estimate_options.pop("gradient_checkpointing", "none")
    needed = current_gib if current_gib is not None else _peak(batch_size, frames, current, estimate_options)
    if needed <= budget_gib:
        return None
    head = (f"estimated peak {needed:.1f} GiB for batch {batch_size} x {frames} frames with --gradient-checkpointing "
            f"{current} exceeds {budget_gib:.1f} GiB")
    fits = lightest_checkpointing(budget_gib, batch_size, frames, after=current, **estimate_options)
    if fits is not None:
        return f"{head}: use --gradient-checkpointing {fits[0]} (estimated {fits[1]:.1f} GiB)"
    most = largest_frame_count(budget_gib, batch_size=batch_size, gradient_checkpointing="full", **estimate_options)
    return (f"{head}, even with --gradient-checkpointing full: use at most {most} --frames at this batch size, "
            "a smaller --batch-size or a smaller --size")


def _peak(batch_size: int, frames: int, level: str, estimate_options: dict[str, Any]) -> float:
    options = dict(estimate_options, gradient_checkpointing=level)
    return estimate_training_memory(batch_size=batch_size, frames=frames, **options)["total_gib"]


def lightest_checkpointing(
    budget_gib: float, batch_size: int, frames: int, after: str | None = None, **estimate_options: Any
) -> tuple[str, float] | None:
    """(level, estimated GiB) of the least recomputing `--gradient-checkpointing` level (after `after`,
    if given) whose estimated peak fits `budget_gib`; None when not even `full` fits."""
    from ..models.video_unet import VideoUNet

    levels = VideoUNet.CHECKPOINTING  # least recomputation (and most memory) first
    estimate_options.pop("gradient_checkpointing", None)
    for level in levels[levels.index(after) + 1 :] if after else levels:
        if (estimate := _peak(batch_size, frames, level, estimate_options)) <= budget_gib:
            return level, estimate
    return None
