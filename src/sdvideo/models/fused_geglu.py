"""GEGLU's projection and gate in one Triton matmul, for inference.

SD's feed-forward starts with GEGLU: h = x W^T + b with 8 x channels outputs, split into a value half and
a gate half, out = value * gelu(gate). Run as diffusers runs it, a matmul writes h and a second kernel
reads all of it back to write half as much (H100, 16-frame guided sampling at 512 px, run 45's profile:
that kernel alone took 3.3 % of a denoising step). Here each tile of the matmul accumulates the value and
the gate columns side by side and writes only their product: h never reaches GPU memory.

`FusedGEGLU` is diffusers' `GEGLU` with that forward where it applies (`supported`: no autograd, Triton,
CUDA, half precision); elsewhere, training included, it runs diffusers' own forward. Its weights and
state dict are GEGLU's. Tests run the kernel on the CPU through Triton's interpreter (in fp32 there).
"""

from __future__ import annotations

import importlib.util
import os

import torch
from diffusers.models.activations import GEGLU

DEVICES = {"cuda"}  # where `FusedGEGLU` takes the kernel; tests add "cpu" under Triton's interpreter
ENABLED = True  # off: always diffusers' forward (benchmarks compare the two)

HAVE_TRITON = importlib.util.find_spec("triton") is not None
INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1"

if HAVE_TRITON:
    import triton
    import triton.language as tl

    # Tile shapes for H100-class GPUs (two accumulators of BLOCK_M x BLOCK_N each); the interpreter gets one.
    _CONFIGS = [triton.Config(dict(BLOCK_M=16, BLOCK_N=16, BLOCK_K=16, GROUP_M=2))] if INTERPRETED else [
        triton.Config(dict(BLOCK_M=128, BLOCK_N=128, BLOCK_K=64, GROUP_M=8), num_stages=3, num_warps=8),
        triton.Config(dict(BLOCK_M=128, BLOCK_N=64, BLOCK_K=64, GROUP_M=8), num_stages=4, num_warps=4),
        triton.Config(dict(BLOCK_M=64, BLOCK_N=128, BLOCK_K=64, GROUP_M=8), num_stages=4, num_warps=4),
        triton.Config(dict(BLOCK_M=128, BLOCK_N=128, BLOCK_K=32, GROUP_M=8), num_stages=4, num_warps=8),
        triton.Config(dict(BLOCK_M=256, BLOCK_N=64, BLOCK_K=64, GROUP_M=8), num_stages=3, num_warps=8),
    ]

    @triton.autotune(configs=_CONFIGS, key=["M", "N", "K"])
    @triton.jit
    def _geglu_kernel(x_ptr, w_ptr, b_ptr, out_ptr, M, N, K, stride_xm, stride_wn, stride_om,
                      HAS_BIAS: tl.constexpr, IEEE: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                      BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr):
        # x: (M, K); w: (2N, K), value rows then gate rows; out: (M, N). Grouped tile order for L2 reuse.
        pid = tl.program_id(0)
        tiles_m, tiles_n = tl.cdiv(M, BLOCK_M), tl.cdiv(N, BLOCK_N)
        group = pid // (GROUP_M * tiles_n)
        first_m = group * GROUP_M
        group_m = min(tiles_m - first_m, GROUP_M)
        tile_m = first_m + (pid % (GROUP_M * tiles_n)) % group_m
        tile_n = (pid % (GROUP_M * tiles_n)) // group_m
        rows = tile_m * BLOCK_M + tl.arange(0, BLOCK_M)
        cols = tile_n * BLOCK_N + tl.arange(0, BLOCK_N)
        ks = tl.arange(0, BLOCK_K)
        x_tile = x_ptr + rows[:, None].to(tl.int64) * stride_xm + ks[None, :]
        value_tile = w_ptr + cols[None, :].to(tl.int64) * stride_wn + ks[:, None]  # (BLOCK_K, BLOCK_N) of w^T
        gate_tile = value_tile + N * stride_wn
        value = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        gate = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        for k in range(0, tl.cdiv(K, BLOCK_K)):
            k_left = K - k * BLOCK_K
            x = tl.load(x_tile, mask=(rows[:, None] < M) & (ks[None, :] < k_left), other=0.0)
            w_mask = (ks[:, None] < k_left) & (cols[None, :] < N)
            wv = tl.load(value_tile, mask=w_mask, other=0.0)
            wg = tl.load(gate_tile, mask=w_mask, other=0.0)
            if IEEE:  # fp32 (the interpreter): exact products
                value = tl.dot(x.to(tl.float32), wv.to(tl.float32), value, input_precision="ieee")
                gate = tl.dot(x.to(tl.float32), wg.to(tl.float32), gate, input_precision="ieee")
            else:
                value = tl.dot(x, wv, value)
                gate = tl.dot(x, wg, gate)
            x_tile += BLOCK_K
            value_tile += BLOCK_K
            gate_tile += BLOCK_K
        if HAS_BIAS:
            value += tl.load(b_ptr + cols, mask=cols < N, other=0.0).to(tl.float32)[None, :]
            gate += tl.load(b_ptr + N + cols, mask=cols < N, other=0.0).to(tl.float32)[None, :]
        out = value * (0.5 * gate * (1.0 + tl.math.erf(gate * 0.7071067811865476)))  # exact (erf) GELU
        out_tile = out_ptr + rows[:, None].to(tl.int64) * stride_om + cols[None, :]
        tl.store(out_tile, out.to(out_ptr.dtype.element_ty), mask=(rows[:, None] < M) & (cols[None, :] < N))

    @torch.library.custom_op("sdvideo::geglu", mutates_args=())
    def _geglu(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        m, k = x.shape
        n = weight.shape[0] // 2
        out = x.new_empty(m, n)
        grid = lambda meta: (triton.cdiv(m, meta["BLOCK_M"]) * triton.cdiv(n, meta["BLOCK_N"]),)  # noqa: E731
        _geglu_kernel[grid](x, weight, bias if bias is not None else weight, out, m, n, k, x.stride(0),
                            weight.stride(0), out.stride(0), HAS_BIAS=bias is not None,
                            IEEE=x.dtype == torch.float32 or INTERPRETED)
        return out

    @_geglu.register_fake
    def _(x, weight, bias):
        return x.new_empty(x.shape[0], weight.shape[0] // 2)


def geglu(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """value * gelu(gate) of (value, gate) = (x W^T + b).chunk(2, -1), without materialising x W^T + b.
    x: (..., K); weight: (2N, K); bias: (2N,) or None -> (..., N) in x's dtype."""
    flat = x.reshape(-1, x.shape[-1]).contiguous()
    out = torch.ops.sdvideo.geglu(flat, weight.contiguous(), None if bias is None else bias.contiguous())
    return out.view(*x.shape[:-1], out.shape[-1])


def supported(x: torch.Tensor) -> bool:
    """Whether `FusedGEGLU` takes the kernel for input `x`: inference (no autograd graph), and a
    device where Triton runs it; half precision on the GPU, any float dtype under the interpreter."""
    return (ENABLED and HAVE_TRITON and x.device.type in DEVICES and not torch.is_grad_enabled()
            and (x.dtype in (torch.float16, torch.bfloat16) or INTERPRETED))


class FusedGEGLU(GEGLU):
    """diffusers' GEGLU, whose inference forward is one fused matmul (`geglu`) where `supported`."""

    def forward(self, hidden_states: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        if args or kwargs or not supported(hidden_states):
            return super().forward(hidden_states, *args, **kwargs)
        weight, bias = self.proj.weight, self.proj.bias
        if torch.is_autocast_enabled(hidden_states.device.type):  # as autocast runs the projection
            dtype = torch.get_autocast_dtype(hidden_states.device.type)
            hidden_states, weight = hidden_states.to(dtype), weight.to(dtype)
            bias = None if bias is None else bias.to(dtype)
        elif weight.dtype != hidden_states.dtype:
            return super().forward(hidden_states)
        return geglu(hidden_states, weight, bias)


def use_fused_geglu(model: torch.nn.Module) -> int:
    """Make every diffusers GEGLU of `model` a `FusedGEGLU` (same parameters); returns how many."""
    count = 0
    for module in model.modules():
        if type(module) is GEGLU:
            module.__class__ = FusedGEGLU
            count += 1
    return count
