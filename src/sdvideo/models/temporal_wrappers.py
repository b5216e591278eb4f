"""Wrappers that put temporal layers behind the spatial layers of a diffusers 2-D UNet.

The 2-D UNet sees a batch of independent frames, (batch * frames, channels, height, width). Each
wrapper calls the original spatial module, then, when time is enabled, its temporal layer over the
frames of each video. How many frames form a video (and the fps, if any) is read from a
`FrameContext` shared by all wrappers of one model and set by `VideoUNet.forward`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import torch
from diffusers.models.modeling_outputs import Transformer2DModelOutput
from torch import nn
from torch.utils.checkpoint import CheckpointPolicy, checkpoint, create_selective_checkpoint_contexts

from .fps_embedding import FpsEmbedding
from .temporal_attention import TemporalTransformer
from .layout import gradient_in_input_layout
from .temporal_conv import TemporalConv


@dataclass
class FrameContext:
    num_frames: int = 1
    enable_time: bool = True
    fps: torch.Tensor | None = None  # (batch * frames,) or None: no fps conditioning for this call
    time_embedding: torch.Tensor | None = None  # (batch * frames, dim): this call's, for temporal layers that read it
    checkpoint_temporal: bool = False  # recompute temporal layers in backward instead of storing
    checkpoint_attention: bool = False  # recompute whole spatio-temporal transformers in backward
    guidance_pair: bool = False  # the batch's halves differ only in text: share the layers before it (guidance_pair.py)
    # (head_dim, rope_base) -> float32 rotary (cos, sin) tables for num_frames, made once per call (VideoUNet.forward)
    rotary: dict[tuple[int, float], tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)

    def __deepcopy__(self, memo: dict) -> "FrameContext":
        # A copied model gets this call's settings but not its time embedding: after a training forward it is an
        # autograd graph's tensor, which deepcopy refuses; the copy's next call sets its own.
        copied = FrameContext.__new__(FrameContext)
        memo[id(self)] = copied
        for name, value in vars(self).items():
            setattr(copied, name, None if name == "time_embedding" else copy.deepcopy(value, memo))
        return copied


# The fused attention kernels SDPA dispatches to (one per backend).
ATTENTION_KERNELS = [
    getattr(torch.ops.aten, name).default
    for name in ("_scaled_dot_product_flash_attention", "_scaled_dot_product_efficient_attention",
                 "_scaled_dot_product_cudnn_attention", "_scaled_dot_product_flash_attention_for_cpu")
    if hasattr(torch.ops.aten, name)
]
# Our own fused temporal attention (fused_frame_attention.py), registered where Triton is.
FUSED_ATTENTION_KERNELS = [torch.ops.sdvideo.frame_attention.default] if hasattr(torch.ops.sdvideo, "frame_attention") else []
KEPT_ATTENTION_MIN_KEYS = 1024


def keeps_attention_output(key: torch.Tensor) -> bool:
    """Whether selective checkpointing stores an attention kernel's output rather than recomputing it.

    Recomputing costs 4 x keys x channels FLOPs per output value, so the kernels worth keeping are
    those over many keys: spatial self-attention at 32 x 32 latents and above (1,024 and 4,096 keys;
    over half of a 64 x 64 SD block's FLOPs), not cross-attention (77 text tokens) nor temporal
    attention (one key per frame). key: (batch, heads, keys, head_dim).
    """
    return key.shape[-2] >= KEPT_ATTENTION_MIN_KEYS


_MATMULS = {op: i for op, i in ((torch.ops.aten.mm.default, 0), (torch.ops.aten.bmm.default, 0),
                                  (torch.ops.aten.addmm.default, 1), (torch.ops.aten.baddbmm.default, 1))}


def contraction_size(op, args) -> int | None:
    """Multiply-adds per output value of a matmul or convolution op (its contraction length), else None.

    Recomputing an op costs 2 x this many FLOPs per output value: the price of not storing it."""
    if op in _MATMULS:
        return args[_MATMULS[op]].shape[-1]
    if op == torch.ops.aten.convolution.default:
        return args[1][0].numel()  # weight (out, in / groups, *kernel): in / groups x kernel taps
    return None


class SavePolicy:
    """Which ops' outputs a recomputed (checkpointed) region stores: a selective-checkpointing policy.

    Always stored: attention over many keys (`keeps_attention_output`). With `max_recomputed_contraction`
    (the `light` levels) also every other attention kernel and every matmul or convolution that contracts
    over more values than that: with it set to a transformer's width, backward recomputes only the norms,
    pointwise ops and the projections out of the residual stream (q, k, v, the feed-forwards' first layer,
    at 2 x width FLOPs per value), the cheapest bytes to recompute, and stores the rest.
    """

    def __init__(self, max_recomputed_contraction: int | None = None) -> None:
        self.max_recomputed_contraction = max_recomputed_contraction

    def keeps_attention(self, key: torch.Tensor) -> bool:
        return self.max_recomputed_contraction is not None or keeps_attention_output(key)

    def __call__(self, ctx, op, *args, **kwargs) -> CheckpointPolicy:
        if op in ATTENTION_KERNELS:  # args: query, key, value, ...
            return CheckpointPolicy.MUST_SAVE if self.keeps_attention(args[1]) else CheckpointPolicy.PREFER_RECOMPUTE
        if self.max_recomputed_contraction is None:
            return CheckpointPolicy.PREFER_RECOMPUTE
        if op in FUSED_ATTENTION_KERNELS:
            return CheckpointPolicy.MUST_SAVE
        size = contraction_size(op, args)
        if size is not None and size > self.max_recomputed_contraction:
            return CheckpointPolicy.MUST_SAVE
        return CheckpointPolicy.PREFER_RECOMPUTE


KEEP_LONG_ATTENTION = SavePolicy()


def _maybe_checkpoint(enabled: bool, fn, *args, policy: SavePolicy | None = None, **kwargs):
    """`fn(*args, **kwargs)`, recomputed in backward when `enabled` (training); with a `policy`, the
    outputs it names are stored instead of recomputed (selective checkpointing)."""
    if enabled and torch.is_grad_enabled():
        context = {"context_fn": partial(create_selective_checkpoint_contexts, policy)} if policy is not None else {}
        return checkpoint(fn, *args, use_reentrant=False, **context, **kwargs)
    return fn(*args, **kwargs)


class PseudoConv3d(nn.Module):
    """A spatial `Conv2d` followed by a temporal convolution (Make-A-Video's pseudo-3D convolution)."""

    def __init__(self, spatial: nn.Conv2d, context: FrameContext, kernel_size: int = 3) -> None:
        super().__init__()
        self.spatial = spatial
        self.temporal = TemporalConv(spatial.out_channels, kernel_size)
        self.context = context

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.spatial(x)
        if self.context.enable_time:
            x = _maybe_checkpoint(self.context.checkpoint_temporal, self.temporal, x, self.context.num_frames)
        return x


class SpatioTemporalTransformer(nn.Module):
    """A spatial `Transformer2DModel` (self- and cross-attention to text) then temporal attention."""

    def __init__(self, spatial: nn.Module, channels: int, context: FrameContext, **temporal_options: Any) -> None:
        super().__init__()
        self.spatial = spatial
        self.temporal = TemporalTransformer(channels, **temporal_options)
        self.context = context
        self.checkpoint: bool | None = None  # recompute in backward; None: as the context says for all
        self.save_policy: SavePolicy | None = None  # what a recompute stores; None: nothing (recompute all)

    def forward(self, hidden_states: torch.Tensor, *args: Any, return_dict: bool = True, **kwargs: Any):
        ctx = self.context
        hidden_states = gradient_in_input_layout(hidden_states)  # see layout.py
        recompute = ctx.checkpoint_attention if self.checkpoint is None else self.checkpoint
        x = _maybe_checkpoint(
            recompute, self._forward, hidden_states, ctx.num_frames, ctx.enable_time, *args, policy=self.save_policy,
            **kwargs,
        )
        return (x,) if not return_dict else Transformer2DModelOutput(sample=x)

    def _forward(self, hidden_states: torch.Tensor, num_frames: int, enable_time: bool, *args: Any, **kwargs: Any):
        x = self.spatial(hidden_states, *args, return_dict=False, **kwargs)[0]
        if enable_time:
            rotary = self.context.rotary.get((self.temporal.head_dim, self.temporal.rope_base))
            embedding = self.context.time_embedding if self.temporal.embedding_proj is not None else None
            x = _maybe_checkpoint(self.context.checkpoint_temporal, self.temporal, x, num_frames, rotary, embedding)
        return x


class FpsConditionedTimeEmbedding(nn.Module):
    """The UNet's time embedding plus an fps embedding, when the call carries an fps (and the model has one).

    The result is also left in the frame context, for temporal layers that read the time embedding."""

    def __init__(self, spatial: nn.Module, time_embed_dim: int, context: FrameContext, fps: bool = True) -> None:
        super().__init__()
        self.spatial = spatial
        self.fps_embedding = FpsEmbedding(time_embed_dim) if fps else None
        self.context = context

    def forward(self, sample: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        emb = self.spatial(sample, condition)  # (batch * frames, time_embed_dim)
        if self.context.fps is not None and self.fps_embedding is not None:
            emb = emb + self.fps_embedding(self.context.fps, emb.dtype)
        self.context.time_embedding = emb
        return emb
