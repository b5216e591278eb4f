"""Temporal self-attention: each spatial position attends over the frames of its video."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..fast import fused_linear_gelu
from . import fused_frame_attention
from .layout import is_channels_last


def rotary_cos_sin(num_frames: int, head_dim: int, base: float, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Float32 rotary position tables (frames, head_dim / 2) for frame indices 0 .. num_frames - 1.

    Rotary embeddings make the attention score depend only on the frame offset between query and key,
    so the layer works for any number of frames: there is no table with a maximum length.
    """
    inv_freq = base ** (-torch.arange(0, head_dim, 2, device=device, dtype=torch.float32) / head_dim)
    angles = torch.arange(num_frames, device=device, dtype=torch.float32)[:, None] * inv_freq[None, :]
    return angles.cos(), angles.sin()


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    # x: (..., frames, head_dim); rotate each (even, odd) channel pair by the frame's angle.
    x1, x2 = x[..., 0::2], x[..., 1::2]
    rotated = torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)
    return rotated.flatten(-2)


# Temporal attention over at most this many frames runs as plain tensor ops when compiled (see
# `frame_attention`); longer clips use SDPA's fused kernels, whose memory does not grow with frames^2.
SHORT_ATTENTION_MAX_FRAMES = 32


def frame_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                    short_max_frames: int = SHORT_ATTENTION_MAX_FRAMES) -> torch.Tensor:
    """Softmax attention over frames. q, k, v: (sequences, heads, frames, head_dim).

    Compiled, and over at most `short_max_frames` frames, as two batched matmuls around an fp32 softmax that
    inductor fuses: fused attention kernels tile 16 frames poorly (BENCHMARKS.md). The (frames x frames) fp32
    scores it materialises take 2 x frames / head_dim times q's bytes (half at 16 frames, head size 64).
    Eager, or over more frames, SDPA.
    """
    if torch.compiler.is_compiling() and q.shape[-2] <= short_max_frames:
        scores = (q @ k.transpose(-1, -2)).float() * q.shape[-1] ** -0.5  # (sequences, heads, frames, frames)
        return scores.softmax(-1).to(v.dtype) @ v
    return F.scaled_dot_product_attention(q, k, v)


class TemporalTransformer(nn.Module):
    """Pre-norm multi-head self-attention over frames plus a feed-forward, with no text input.

    Both residual branches end in a zero-initialised projection, so the block is an exact identity
    at initialisation and the inflated UNet starts as the image model it came from.

    Faster forms of the same layer, off until `sdvideo.fast.enable_fast_training` / `enable_fast_inference`
    set them: `fused_attention_devices` (device types where attention runs as one Triton kernel each way,
    `fused_frame_attention.py`), `linear_gelu_devices` (inference: the feed-forward's first matmul with a
    GELU epilogue, `sdvideo/fast/fused_linear_gelu.py`) and `frame_major` (inference on channels-last maps:
    tokens in the map's own order, see `forward`). `short_attention_max_frames`: see `frame_attention`.
    """

    fused_attention_devices: frozenset[str] = frozenset()
    linear_gelu_devices: frozenset[str] = frozenset()
    frame_major = False
    short_attention_max_frames = SHORT_ATTENTION_MAX_FRAMES

    def __init__(self, channels: int, head_dim: int = 64, ff_mult: int = 2, rope_base: float = 10000.0,
                 frame_local: bool = False, embedding_dim: int | None = None) -> None:
        super().__init__()
        self.frame_local = frame_local  # each frame attends to itself only (the capacity control)
        # With embedding_dim: the UNet's time embedding (diffusion step, plus fps when conditioned) enters the
        # attention branch, so the layer can act differently per noise level and frame rate (the spatial
        # resnets read it the same way, through a projection of SiLU(embedding)).
        self.embedding_proj = nn.Linear(embedding_dim, channels) if embedding_dim else None
        heads = max(1, channels // head_dim)
        if channels % heads != 0:
            raise ValueError(f"{channels} channels do not split into {heads} heads")
        self.heads = heads
        self.head_dim = channels // heads
        if self.head_dim % 2 != 0:
            raise ValueError(f"rotary positions need an even head size, got {self.head_dim}")
        self.rope_base = rope_base
        self.norm_attn = nn.LayerNorm(channels)
        self.to_qkv = nn.Linear(channels, 3 * channels, bias=False)
        self.to_out = nn.Linear(channels, channels)
        self.norm_ff = nn.LayerNorm(channels) if ff_mult > 0 else None
        self.ff = (
            nn.Sequential(nn.Linear(channels, ff_mult * channels), nn.GELU(), nn.Linear(ff_mult * channels, channels))
            if ff_mult > 0
            else None
        )
        for last in (self.to_out, self.ff[-1] if self.ff is not None else None):
            if last is not None:
                nn.init.zeros_(last.weight)
                nn.init.zeros_(last.bias)

    def attention(self, tokens: torch.Tensor, rotary: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        # tokens: (n, frames, channels) with n = batch * height * width, or frame-major (batch, frames,
        # height * width, channels) (see `forward`); returns the same layout. rotary: float32 (cos, sin)
        # tables for these frames (rotary_cos_sin), computed once per UNet call: computed here, inside a
        # compiled region, inductor would fuse the tables into the kernels that apply them and evaluate pow,
        # cos and sin once per element (a few percent of a denoising step).
        f, c = tokens.shape[1], tokens.shape[-1]
        qkv = self.to_qkv(tokens)  # tokens' layout, 3c channels
        if rotary is None:
            rotary = rotary_cos_sin(f, self.head_dim, self.rope_base, tokens.device)
        if fused_frame_attention.supported(qkv, self.heads, self.fused_attention_devices):  # one Triton kernel: rotary, softmax, layout
            return self.to_out(fused_frame_attention.fused_frame_attention(qkv, *rotary, self.heads))
        frame_major = qkv.ndim == 4
        if frame_major:  # the tensor ops below take (sequences, frames, 3c)
            b, _, p, _ = qkv.shape
            qkv = qkv.transpose(1, 2).reshape(b * p, f, 3 * c)
        n = qkv.shape[0]
        q, k, v = qkv.view(n, f, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        cos, sin = (table.to(q.dtype) for table in rotary)
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)  # (n, heads, f, head_dim)
        out = frame_attention(q, k, v, self.short_attention_max_frames).transpose(1, 2).reshape(n, f, c)
        return self.to_out(out.view(b, p, f, c).transpose(1, 2) if frame_major else out)

    def feed_forward(self, tokens: torch.Tensor) -> torch.Tensor:
        # tokens: (..., channels), either of `attention`'s layouts. With `linear_gelu_devices`, half-precision
        # inference runs the first Linear and its GELU as one cuBLASLt matmul (fused_linear_gelu: its tanh-form
        # GELU is within 4.8e-4 of the exact one).
        first, _, last = self.ff
        if fused_linear_gelu.supported(tokens, first, self.linear_gelu_devices):
            return last(fused_linear_gelu.linear_gelu(tokens, first))
        return self.ff(tokens)

    def _blocks(self, tokens: torch.Tensor, rotary: tuple[torch.Tensor, torch.Tensor] | None,
                shift: torch.Tensor | None = None) -> torch.Tensor:
        # tokens in either of `attention`'s layouts; the norms and feed-forward act on each token alone.
        # shift: the embedding's projection, (b, f, 1, c) for frame-major tokens, (b, 1, f, c) for (b * h * w,
        # f, c) ones; added to the attention's input only, so the residual stream (and identity at
        # initialisation) is unchanged.
        normed = self.norm_attn(tokens)
        if shift is not None and normed.ndim == 4:
            normed = normed + shift
        elif shift is not None:  # (b * h * w, f, c) viewed per video: (b, h * w, f, c)
            normed = (normed.unflatten(0, (shift.shape[0], -1)) + shift).flatten(0, 1)
        tokens = tokens + self.attention(normed, rotary)
        if self.ff is not None:
            tokens = tokens + self.feed_forward(self.norm_ff(tokens))
        return tokens

    def forward(self, x: torch.Tensor, num_frames: int, rotary: tuple[torch.Tensor, torch.Tensor] | None = None,
                embedding: torch.Tensor | None = None) -> torch.Tensor:
        # x: (batch * frames, channels, height, width) -> same shape. rotary: see `attention`. embedding: the
        # time embedding per frame, (batch * frames, embedding_dim), read when the layer has `embedding_proj`.
        if self.frame_local:  # every frame a clip of one: no information crosses frames
            num_frames, rotary = 1, None
        bf, c, h, w = x.shape
        b = bf // num_frames
        shift = None
        if self.embedding_proj is not None:
            if embedding is None:
                raise ValueError("this temporal layer reads the time embedding; none was given")
            shift = self.embedding_proj(F.silu(embedding)).view(b, num_frames, c).to(x.dtype)  # (b, f, c)
        if self.frame_major and is_channels_last(x) and not torch.is_grad_enabled():
            # Inference on a channels-last map: the tokens in its own memory order, (b, f, h * w, c), a free
            # view in and out. The (b * h * w, f, c) order below costs a permuting copy each way, and inductor
            # compiles the LayerNorms reading or writing it as two-pass looped reductions, slower than the
            # spatial blocks' one-pass norms at 64 x 64 (BENCHMARKS.md). Training keeps the order below.
            tokens = self._blocks(x.permute(0, 2, 3, 1).reshape(b, num_frames, h * w, c), rotary,
                                  None if shift is None else shift[:, :, None])
            return tokens.reshape(bf, h, w, c).permute(0, 3, 1, 2)
        tokens = x.view(b, num_frames, c, h * w).permute(0, 3, 1, 2).reshape(b * h * w, num_frames, c)
        tokens = self._blocks(tokens, rotary, None if shift is None else shift[:, None]).view(b, h * w, num_frames, c)
        if is_channels_last(x):
            # Channels-last in, channels-last out: one copy to (b, f, h*w, c), then a free view, so
            # the convolutions after this layer need no layout conversion.
            return tokens.transpose(1, 2).reshape(bf, h, w, c).permute(0, 3, 1, 2)
        return tokens.permute(0, 2, 3, 1).reshape(bf, c, h, w)
