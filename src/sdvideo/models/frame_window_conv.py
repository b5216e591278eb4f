"""The temporal convolution as batched matrix products over windows of frames (no cuDNN 3-D convolution).

A kernel-k temporal convolution mixes, at every pixel, the channels of k neighbouring frames:
out[t] = sum_j W_j @ x[t + j - k//2], each W_j a (c_out, c_in) matrix. In the UNet's NCHW layout a
video is stored as (frames, channels, pixels), so the k frames around t are one contiguous
(k * c_in, pixels) block of memory once each video is padded with k//2 zero frames at both ends.
Every output frame is then one product (c_out, k * c_in) @ (k * c_in, pixels), and all frames of a
video one strided-batched GEMM over overlapping windows: no layout conversion, no unfolded copy.

cuDNN runs the same convolution as a (k, 1, 1) 3-D convolution, which needs the video transposed to
(channels, frames, ...) and converted to and from its NDHWC kernels' layout: at SD 1.5's largest
feature map that costs more than the arithmetic (`bench/bench_temporal_layers.py`).

Both directions are custom operators, so `torch.compile` calls them as opaque kernels (its graphs
cannot express overlapping windows) and the meta-device memory estimate sees one output per call.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def _pad_frames(x: Tensor, videos: int, frames: int, pad: int) -> Tensor:
    """(videos * frames, c, h, w) -> (videos, frames + 2 * pad, c, h * w) with zero frames at both ends."""
    _, c, h, w = x.shape
    return F.pad(x.reshape(videos, frames, c * h * w), (0, 0, pad, pad)).view(videos, frames + 2 * pad, c, h * w)


def _window_products(padded: Tensor, weight_rows: Tensor, frames: int) -> Tensor:
    """out[v, t] = weight_rows @ (the k frames of video v starting at padded frame t, as one matrix).

    padded: (videos, frames + k - 1, c_in, pixels) contiguous; weight_rows: (c_out, k * c_in).
    Returns (videos, frames, c_out, pixels).
    """
    videos, padded_frames, c_in, pixels = padded.shape
    c_out, window = weight_rows.shape
    out = padded.new_empty(videos, frames, c_out, pixels)
    weights = weight_rows.expand(frames, c_out, window)  # stride 0 over frames: one matrix for all
    for v in range(videos):  # one strided-batched GEMM per video; windows overlap in memory
        start = padded.storage_offset() + v * padded_frames * c_in * pixels
        windows = padded.as_strided((frames, window, pixels), (c_in * pixels, pixels, 1), start)
        torch.bmm(weights, windows, out=out[v])
    return out


@torch.library.custom_op("sdvideo::temporal_conv", mutates_args=())
def temporal_conv(x: Tensor, weight: Tensor, bias: Tensor, frames: int) -> Tensor:
    """Kernel-k convolution over frames. x: (videos * frames, c_in, h, w) NCHW-contiguous;
    weight: (c_out, c_in, k) as a Conv1d stores it; bias: (c_out,). Returns (videos * frames, c_out, h, w)."""
    bf, _, h, w = x.shape
    c_out, c_in, k = weight.shape
    padded = _pad_frames(x.contiguous(), bf // frames, frames, k // 2)
    rows = weight.permute(0, 2, 1).reshape(c_out, k * c_in)  # rows[o, j * c_in + i] = weight[o, i, j]
    out = _window_products(padded, rows, frames)
    out += bias.view(1, 1, c_out, 1)
    return out.view(bf, c_out, h, w)


@temporal_conv.register_fake
def _(x: Tensor, weight: Tensor, bias: Tensor, frames: int) -> Tensor:
    return x.new_empty(x.shape[0], weight.shape[0], x.shape[2], x.shape[3])


@torch.library.custom_op("sdvideo::temporal_conv_backward", mutates_args=())
def temporal_conv_backward(
    grad: Tensor, x: Tensor, weight: Tensor, frames: int, input_grad: bool, weight_grad: bool
) -> tuple[Tensor, Tensor, Tensor]:
    """Gradients of `temporal_conv` for x, weight and bias (empty tensors where not asked for)."""
    bf, c_out, h, w = grad.shape
    _, c_in, k = weight.shape
    videos, pad, pixels = bf // frames, k // 2, h * w
    grad = grad.contiguous()
    empty = grad.new_empty(0)
    grad_x = grad_w = grad_b = empty
    if input_grad:
        # x[s] reaches out[s - j + pad] through W_j: the same window product on the padded grad,
        # with rows[i, m * c_out + o] = W_{k-1-m}[o, i].
        rows = weight.flip(2).permute(1, 2, 0).reshape(c_in, k * c_out)
        grad_x = _window_products(_pad_frames(grad, videos, frames, pad), rows, frames).view(bf, c_in, h, w)
    if weight_grad:
        # dW_j = sum over videos, frames, pixels of grad[t] x[t + j - pad]^T: with channels first and
        # every video padded, one GEMM per j whose inner dimension runs over all frames and pixels
        # (pad frames of the grad are zero, so no pair crosses from one video into the next).
        n = videos * (frames + 2 * pad)
        g = _pad_frames(grad, videos, frames, pad).permute(2, 0, 1, 3).reshape(c_out, n * pixels)
        xs = _pad_frames(x.contiguous(), videos, frames, pad).permute(2, 0, 1, 3).reshape(c_in, n * pixels)
        inner = slice(pad * pixels, (n - pad) * pixels)
        taps = [g[:, inner] @ xs[:, j * pixels : (n - 2 * pad + j) * pixels].T for j in range(k)]
        grad_w = torch.stack(taps, dim=2)  # (c_out, c_in, k)
        accumulate = torch.promote_types(grad.dtype, torch.float32)  # bf16 grads sum in fp32
        grad_b = grad.view(bf, c_out, pixels).sum((0, 2), dtype=accumulate).to(grad.dtype)
    return grad_x, grad_w, grad_b


@temporal_conv_backward.register_fake
def _(grad: Tensor, x: Tensor, weight: Tensor, frames: int, input_grad: bool, weight_grad: bool):
    empty = grad.new_empty(0)
    return (
        x.new_empty(x.shape) if input_grad else empty,
        weight.new_empty(weight.shape) if weight_grad else empty,
        grad.new_empty(weight.shape[0]) if weight_grad else empty,
    )


def _setup_context(ctx, inputs, output) -> None:
    x, weight, bias, frames = inputs
    ctx.save_for_backward(x, weight)
    ctx.frames = frames


def _backward(ctx, grad: Tensor):
    x, weight = ctx.saved_tensors
    needs_x, needs_w, needs_b = ctx.needs_input_grad[:3]
    gx, gw, gb = temporal_conv_backward(grad, x, weight, ctx.frames, needs_x, needs_w or needs_b)
    return gx if needs_x else None, gw if needs_w else None, gb if needs_b else None, None


temporal_conv.register_autograd(_backward, setup_context=_setup_context)
