"""Temporal attention over a few frames as one Triton kernel per direction.

`TemporalTransformer` projects q, k and v with one matmul, (sequences, frames, 3 * channels). For each
(sequence, head), i.e. one spatial position of one video, the forward kernel loads its frames' q, k and
v rows from there, rotates q and k by the frame positions (rotary), computes the (frames x frames)
scores, softmax and weighted sum in registers and writes the output straight into the (sequences,
frames, channels) layout the output projection reads. The backward kernel recomputes the scores
(frames x frames is tiny) and writes the gradient of the fused projection in one pass. In inference on
channels-last maps the projection comes frame-major instead, (batch, frames, positions, 3 * channels), the
map's own order (no permuting copies around the layer); the kernels take a batch, a position and a frame
stride for either layout.

Why: over 16 frames the work is a few kilobytes per (sequence, head); as tensor ops (`frame_attention`)
it is a rotary kernel, two batched matmuls of 16 x 16 tiles, a softmax and layout copies, each a trip
through GPU memory, and backward twice that; one kernel each way is faster in training steps and in guided
sampling (BENCHMARKS.md).

Runs where Triton runs (CUDA, bf16/fp16 on compute capability >= 8.0, fp32 too) for up to
`MAX_FRAMES` frames and power-of-two head sizes >= 32 (`supported`), on the device types in a
`TemporalTransformer`'s `fused_attention_devices` (empty until `sdvideo.fast.enable_fast_training` or
`enable_fast_inference` sets it: this path serves training and sampling); the tensor-op path elsewhere. Tests run the kernels on the CPU through Triton's interpreter
(`TRITON_INTERPRET=1`, set before this module is imported).
"""

from __future__ import annotations

import importlib.util
import os

import torch

MAX_FRAMES = 32
DEVICES = frozenset({"cuda"})  # where the enable_fast_* calls turn this path on by default (tests: "cpu" too)

HAVE_TRITON = importlib.util.find_spec("triton") is not None
# Triton's CPU interpreter multiplies half-precision tiles wrongly (tl.dot): there the products run in fp32.
INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1"

if HAVE_TRITON:
    import triton
    import triton.language as tl

    @triton.jit
    def _rotated_halves(x, cos, sin, HALF: tl.constexpr, BLOCK_F: tl.constexpr):
        # x: (BLOCK_F, 2 * HALF) with (even, odd) channel pairs -> the rotated evens and odds, fp32.
        even, odd = tl.split(tl.reshape(x.to(tl.float32), (BLOCK_F, HALF, 2)))
        return even * cos - odd * sin, even * sin + odd * cos

    @triton.jit
    def _dot(a, b, IEEE: tl.constexpr):
        if IEEE:  # exact fp32 products (on a GPU the default would round fp32 inputs to tf32)
            return tl.dot(a.to(tl.float32), b.to(tl.float32), input_precision="ieee")
        return tl.dot(a, b)

    @triton.jit
    def _rows(positions, stride_batch, stride_pos, stride_frame, HEADS: tl.constexpr, HEAD_DIM: tl.constexpr,
              BLOCK_F: tl.constexpr):
        """Offsets (BLOCK_F, HEAD_DIM) of this program's (sequence, head) rows, the sequence being position
        `seq % positions` of batch `seq // positions`, each frame `stride_frame` further on."""
        pid = tl.program_id(0)
        seq, head = pid // HEADS, pid % HEADS
        batch, pos = seq // positions, seq % positions
        base = batch.to(tl.int64) * stride_batch + pos.to(tl.int64) * stride_pos + head * HEAD_DIM
        return base + tl.arange(0, BLOCK_F)[:, None].to(tl.int64) * stride_frame + tl.arange(0, HEAD_DIM)[None, :]

    @triton.jit
    def _load_qkv_probs(qkv_ptr, cos_ptr, sin_ptr, frames, positions, stride_batch, stride_pos, stride_frame, scale,
                        HEADS: tl.constexpr, HEAD_DIM: tl.constexpr, BLOCK_F: tl.constexpr, IEEE: tl.constexpr):
        """This program's (sequence, head): rotated q and k halves and v in the input dtype, the
        softmax probabilities (fp32), the frame mask and the row offsets."""
        HALF: tl.constexpr = HEAD_DIM // 2
        f = tl.arange(0, BLOCK_F)
        valid = f < frames
        rows = _rows(positions, stride_batch, stride_pos, stride_frame, HEADS, HEAD_DIM, BLOCK_F)
        dtype = qkv_ptr.dtype.element_ty
        q = tl.load(qkv_ptr + rows, mask=valid[:, None], other=0.0)
        k = tl.load(qkv_ptr + rows + HEADS * HEAD_DIM, mask=valid[:, None], other=0.0)
        v = tl.load(qkv_ptr + rows + 2 * HEADS * HEAD_DIM, mask=valid[:, None], other=0.0)
        tables = f[:, None] * HALF + tl.arange(0, HALF)[None, :]
        cos = tl.load(cos_ptr + tables, mask=valid[:, None], other=1.0)
        sin = tl.load(sin_ptr + tables, mask=valid[:, None], other=0.0)
        q_even, q_odd = _rotated_halves(q, cos, sin, HALF, BLOCK_F)
        k_even, k_odd = _rotated_halves(k, cos, sin, HALF, BLOCK_F)
        q_even, q_odd, k_even, k_odd = q_even.to(dtype), q_odd.to(dtype), k_even.to(dtype), k_odd.to(dtype)
        scores = _dot(q_even, tl.trans(k_even), IEEE) + _dot(q_odd, tl.trans(k_odd), IEEE)  # (BLOCK_F, BLOCK_F)
        scores = tl.where(valid[None, :], scores * scale, float("-inf"))
        probs = tl.exp(scores - tl.max(scores, axis=1)[:, None])
        probs = probs / tl.sum(probs, axis=1)[:, None]
        return q_even, q_odd, k_even, k_odd, v, probs, cos, sin, valid, rows

    @triton.jit
    def _forward_kernel(qkv_ptr, cos_ptr, sin_ptr, out_ptr, frames, positions, stride_batch, stride_pos,
                        stride_frame, out_stride_batch, out_stride_pos, out_stride_frame, scale, HEADS: tl.constexpr,
                        HEAD_DIM: tl.constexpr, BLOCK_F: tl.constexpr, IEEE: tl.constexpr):
        _, _, _, _, v, probs, _, _, valid, _ = _load_qkv_probs(
            qkv_ptr, cos_ptr, sin_ptr, frames, positions, stride_batch, stride_pos, stride_frame, scale, HEADS,
            HEAD_DIM, BLOCK_F, IEEE)
        out = _dot(probs.to(v.dtype), v, IEEE)  # (BLOCK_F, HEAD_DIM)
        offsets = _rows(positions, out_stride_batch, out_stride_pos, out_stride_frame, HEADS, HEAD_DIM, BLOCK_F)
        tl.store(out_ptr + offsets, out.to(out_ptr.dtype.element_ty), mask=valid[:, None])

    @triton.jit
    def _backward_kernel(qkv_ptr, cos_ptr, sin_ptr, grad_ptr, grad_qkv_ptr, frames, positions, stride_batch,
                         stride_pos, stride_frame, grad_stride_batch, grad_stride_pos, grad_stride_frame, scale,
                         HEADS: tl.constexpr, HEAD_DIM: tl.constexpr, BLOCK_F: tl.constexpr, IEEE: tl.constexpr):
        # grad_qkv has qkv's strides (both made contiguous by the caller).
        q_even, q_odd, k_even, k_odd, v, probs, cos, sin, valid, rows = _load_qkv_probs(
            qkv_ptr, cos_ptr, sin_ptr, frames, positions, stride_batch, stride_pos, stride_frame, scale, HEADS,
            HEAD_DIM, BLOCK_F, IEEE)
        HALF: tl.constexpr = HEAD_DIM // 2
        dtype = v.dtype
        grad_rows = _rows(positions, grad_stride_batch, grad_stride_pos, grad_stride_frame, HEADS, HEAD_DIM, BLOCK_F)
        grad_out = tl.load(grad_ptr + grad_rows, mask=valid[:, None], other=0.0).to(dtype)  # (BLOCK_F, HEAD_DIM)
        grad_v = _dot(tl.trans(probs.to(dtype)), grad_out, IEEE)
        grad_probs = _dot(grad_out, tl.trans(v), IEEE)  # (BLOCK_F, BLOCK_F)
        grad_scores = probs * (grad_probs - tl.sum(probs * grad_probs, axis=1)[:, None]) * scale
        grad_scores = grad_scores.to(dtype)
        # Through the rotation: its transpose turns the rotated halves' gradients into the inputs'.
        gq_even, gq_odd = _dot(grad_scores, k_even, IEEE), _dot(grad_scores, k_odd, IEEE)
        gk_even, gk_odd = _dot(tl.trans(grad_scores), q_even, IEEE), _dot(tl.trans(grad_scores), q_odd, IEEE)
        grad_q = tl.reshape(tl.join(gq_even * cos + gq_odd * sin, gq_odd * cos - gq_even * sin), (BLOCK_F, HEAD_DIM))
        grad_k = tl.reshape(tl.join(gk_even * cos + gk_odd * sin, gk_odd * cos - gk_even * sin), (BLOCK_F, HEAD_DIM))
        out_ty = grad_qkv_ptr.dtype.element_ty
        mask = valid[:, None]
        tl.store(grad_qkv_ptr + rows, grad_q.to(out_ty), mask=mask)
        tl.store(grad_qkv_ptr + rows + HEADS * HEAD_DIM, grad_k.to(out_ty), mask=mask)
        tl.store(grad_qkv_ptr + rows + 2 * HEADS * HEAD_DIM, grad_v.to(out_ty), mask=mask)

    def _launch_options(qkv: torch.Tensor, heads: int) -> dict:
        frames, head_dim = qkv.shape[1], qkv.shape[-1] // (3 * heads)
        return dict(HEADS=heads, HEAD_DIM=head_dim, BLOCK_F=max(16, triton.next_power_of_2(frames)),
                    IEEE=qkv.dtype == torch.float32 or INTERPRETED, num_warps=4 if frames > 16 else 2)

    def _sequences(t: torch.Tensor) -> tuple[int, int, int, int, int]:
        """(sequences, positions, batch stride, position stride, frame stride) of a (sequences, frames, C)
        or (batch, frames, positions, C) tensor: the kernels' view of either layout."""
        if t.ndim == 3:
            return t.shape[0], t.shape[0], 0, t.stride(0), t.stride(1)
        return t.shape[0] * t.shape[2], t.shape[2], t.stride(0), t.stride(2), t.stride(1)

    # Opaque custom ops (compiled graphs call them as they are): Triton's CPU interpreter, which the
    # tests use, cannot be traced through as `torch.library.triton_op` would.
    @torch.library.custom_op("sdvideo::frame_attention", mutates_args=())
    def _frame_attention(qkv: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, heads: int) -> torch.Tensor:
        options = _launch_options(qkv, heads)
        out = qkv.new_empty(*qkv.shape[:-1], heads * options["HEAD_DIM"])
        sequences, positions, *strides = _sequences(qkv)
        _forward_kernel[(sequences * heads,)](
            qkv, cos, sin, out, qkv.shape[1], positions, *strides, *_sequences(out)[2:],
            options["HEAD_DIM"] ** -0.5, **options)
        return out

    @_frame_attention.register_fake
    def _(qkv, cos, sin, heads):
        return qkv.new_empty(*qkv.shape[:-1], qkv.shape[-1] // 3)

    @torch.library.custom_op("sdvideo::frame_attention_backward", mutates_args=())
    def _frame_attention_backward(qkv: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, grad_out: torch.Tensor,
                                  heads: int) -> torch.Tensor:
        options = _launch_options(qkv, heads)
        grad_qkv = torch.empty_like(qkv)
        sequences, positions, *strides = _sequences(qkv)
        _backward_kernel[(sequences * heads,)](
            qkv, cos, sin, grad_out, grad_qkv, qkv.shape[1], positions, *strides, *_sequences(grad_out)[2:],
            options["HEAD_DIM"] ** -0.5, **options)
        return grad_qkv

    @_frame_attention_backward.register_fake
    def _(qkv, cos, sin, grad_out, heads):
        return torch.empty_like(qkv)

    def _setup_context(ctx, inputs, output) -> None:
        qkv, cos, sin, heads = inputs
        ctx.save_for_backward(qkv, cos, sin)
        ctx.heads = heads

    def _backward(ctx, grad_out: torch.Tensor):
        qkv, cos, sin = ctx.saved_tensors
        grad_qkv = torch.ops.sdvideo.frame_attention_backward(qkv, cos, sin, grad_out.contiguous(), ctx.heads)
        return grad_qkv, None, None, None

    _frame_attention.register_autograd(_backward, setup_context=_setup_context)


@torch.compiler.assume_constant_result  # asked inside compiled regions: a constant for the graph
def _capable(device_type: str, device_index: int | None, dtype: torch.dtype) -> bool:
    if device_type != "cuda" or dtype != torch.bfloat16:
        return True
    return torch.cuda.get_device_capability(device_index)[0] >= 8  # bf16 tensor-core dots: Ampere or later


def supported(qkv: torch.Tensor, heads: int, devices=DEVICES) -> bool:
    """Whether `fused_frame_attention` runs for this (sequences, frames, 3 * channels) projection on `devices`."""
    head_dim = qkv.shape[-1] // (3 * heads)
    return (HAVE_TRITON and qkv.device.type in devices and qkv.shape[1] <= MAX_FRAMES
            and head_dim >= 32 and head_dim & (head_dim - 1) == 0
            and qkv.dtype in (torch.float32, torch.bfloat16, torch.float16)
            and _capable(qkv.device.type, qkv.device.index, qkv.dtype))


def fused_frame_attention(qkv: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, heads: int) -> torch.Tensor:
    """Softmax attention over frames with rotary positions, from the fused projection.

    qkv: (sequences, frames, 3 * heads * head_dim) or, frame-major, (batch, frames, positions, 3 * heads *
    head_dim) -- a channels-last video's own order, where each position's frames lie positions x channels
    apart; q then k then v, each head's channels adjacent. cos, sin: float32 (frames, head_dim / 2) rotary
    tables (`rotary_cos_sin`), rotating each (even, odd) channel pair. Returns qkv's layout with heads *
    head_dim channels, in qkv's dtype. Differentiable in qkv.
    """
    return torch.ops.sdvideo.frame_attention(qkv.contiguous(), cos.float().contiguous(), sin.float().contiguous(), heads)
