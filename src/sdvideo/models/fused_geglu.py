"""GEGLU's projection and gate in one Triton matmul, for half-precision inference.

SD's spatial feed-forward starts with GEGLU: h = x W^T + b with 8 x channels outputs, split into a value half
and a gate half, out = value * gelu(gate). Run as diffusers runs it, cuBLAS writes h and a second kernel reads
all of it back to write half as much: at the 64 x 64 level of a guided 16-frame call 131,072 tokens x 2,560
channels, 0.33 ms of the feed-forward's 0.72 (H100, run 76), about 2.9 ms of an 82 ms UNet call over the levels.

Here each tile of one matmul holds value and gate columns side by side, and writes only their product: h
never reaches GPU memory. The kernel reads W's rows interleaved -- tile column 2j is value row j, column
2j + 1 gate row j -- so one accumulator and one tensor-core instruction stream cover both halves, and the
pairs sit next to each other in every thread's registers when the epilogue splits them (an earlier form
with two accumulators, one per half, lost to cuBLAS: 0.85 against 0.75 ms, run 51). The weights stay as
diffusers stores them: no interleaved copy, no cache.

`FusedGEGLU` is diffusers' `GEGLU` with that forward where it applies (`supported`: no autograd, Triton,
CUDA, half precision); elsewhere, training included, it runs diffusers' own forward. Its parameters and
state dict are GEGLU's. Tests run the kernel on the CPU through Triton's interpreter (in fp32 there).
"""

from __future__ import annotations

import importlib.util
import os

import torch
from diffusers.models.activations import GEGLU
from torch import nn

DEVICES = {"cuda"}  # where `FusedGEGLU` takes the kernel; tests add "cpu" under Triton's interpreter
ENABLED = True  # off: always diffusers' forward (benchmarks compare the two)
MAX_K = 640  # the kernel where GEGLU's input has at most this many channels (run 86: slower than cuBLAS beyond)

HAVE_TRITON = importlib.util.find_spec("triton") is not None
INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1"

if HAVE_TRITON:
    import triton
    import triton.language as tl

    # Tiles (BLOCK_M, BLOCK_N, BLOCK_K, warps, stages, programs per SM) for H100-class GPUs; BLOCK_N counts
    # interleaved columns (a tile writes BLOCK_N // 2 outputs). The interpreter gets one small tile.
    TILES = [(16, 32, 16, 1, 1, 1)] if INTERPRETED else [
        (128, 256, 64, 8, 3, 1), (128, 256, 32, 8, 4, 1), (128, 256, 32, 8, 3, 1), (128, 128, 64, 4, 3, 2),
        (128, 128, 64, 8, 3, 2), (64, 256, 32, 4, 4, 2), (128, 128, 32, 4, 4, 2),
    ]
    TILE = TILES[0]  # the product's; bench/bench_geglu_tiles.py times the others

    _SM_COUNTS: dict[int, int] = {}

    def _sm_count(device: torch.device) -> int:
        if device.type != "cuda":
            return 4  # the interpreter: a few programs, each taking several tiles
        index = device.index if device.index is not None else torch.cuda.current_device()
        if index not in _SM_COUNTS:
            _SM_COUNTS[index] = torch.cuda.get_device_properties(index).multi_processor_count
        return _SM_COUNTS[index]

    @triton.jit
    def _gelu(gate, GELU: tl.constexpr):
        # 3: exact GELU with erf from Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7: one exp and one reciprocal
        # where libdevice's erf costs a fifth of the kernel, run 85); 1: libdevice's erf; 2: GELU's tanh form on
        # the hardware tanh; 0: no GELU (1, 2 and 0: bench only).
        if GELU == 3:
            z = gate * 0.7071067811865476
            a = tl.abs(z)
            t = 1.0 / (1.0 + 0.3275911 * a)
            poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
            erf_abs = 1.0 - poly * tl.exp(-a * a)
            return 0.5 * gate * (1.0 + tl.where(z < 0, -erf_abs, erf_abs))
        elif GELU == 1:
            return 0.5 * gate * (1.0 + tl.math.erf(gate * 0.7071067811865476))
        elif GELU == 2:
            inner = 0.7978845608028654 * (gate + 0.044715 * gate * gate * gate)
            t = tl.inline_asm_elementwise("tanh.approx.f32 $0, $1;", "=r,r", [inner], dtype=tl.float32,
                                          is_pure=True, pack=1)
            return 0.5 * gate * (1.0 + t)
        else:
            return gate

    @triton.jit
    def _geglu_tile_store(acc, b_ptr, out_ptr, rows, w_rows, tile_n, M, N, stride_om, HAS_BIAS: tl.constexpr,
                          GELU: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
        # acc: (BLOCK_M, BLOCK_N) with interleaved columns -> out[rows, tile_n's BLOCK_N // 2 outputs].
        if HAS_BIAS:
            acc += tl.load(b_ptr + w_rows, mask=w_rows < 2 * N, other=0.0).to(tl.float32)[None, :]
        value, gate = tl.split(tl.reshape(acc, (BLOCK_M, BLOCK_N // 2, 2)))  # adjacent columns: one thread's pair
        out = value * _gelu(gate, GELU)
        cols = tile_n * (BLOCK_N // 2) + tl.arange(0, BLOCK_N // 2)
        out_tile = out_ptr + rows[:, None].to(tl.int64) * stride_om + cols[None, :]
        tl.store(out_tile, out.to(out_ptr.dtype.element_ty), mask=(rows < M)[:, None] & (cols < N)[None, :])

    @triton.jit
    def _geglu_kernel(x_ptr, w_ptr, b_ptr, out_ptr, M, N, K, stride_xm, stride_wn, stride_om, programs,
                      HAS_BIAS: tl.constexpr, IEEE: tl.constexpr, GELU: tl.constexpr, BLOCK_M: tl.constexpr,
                      BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
        # x: (M, K); w: (2N, K), value rows then gate rows (diffusers' layout); out: (M, N).
        # Persistent: `programs` programs (about one per SM) take tiles pid, pid + programs, ... in one flat loop
        # over (tile, k) steps, so the next tile's loads are in flight while a tile's epilogue runs (with
        # K = 320 a tile is only five k steps). Tiles along N run next to each other: programs working at the
        # same time share x's rows in L2 (W is small).
        pid = tl.program_id(0)
        tiles_n = tl.cdiv(2 * N, BLOCK_N)
        tiles = tl.cdiv(M, BLOCK_M) * tiles_n
        k_steps = tl.cdiv(K, BLOCK_K)
        my_tiles = tl.cdiv(tiles - pid, programs)
        inner, ks = tl.arange(0, BLOCK_N), tl.arange(0, BLOCK_K)
        tile, tile_n, ki = pid - programs, 0, -1
        rows = tl.arange(0, BLOCK_M)
        w_rows = inner
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        for _ in range(0, k_steps * my_tiles):
            ki = tl.where(ki == k_steps - 1, 0, ki + 1)
            if ki == 0:
                tile += programs
                tile_m, tile_n = tile // tiles_n, tile % tiles_n
                rows = tile_m * BLOCK_M + tl.arange(0, BLOCK_M)
                # Interleaved tile columns: 2j -> value row j, 2j + 1 -> gate row j of this tile's outputs.
                w_rows = tile_n * (BLOCK_N // 2) + inner // 2 + (inner % 2) * N
            k_ok = ks < K - ki * BLOCK_K
            x = tl.load(x_ptr + rows[:, None].to(tl.int64) * stride_xm + (ki * BLOCK_K + ks)[None, :],
                        mask=(rows < M)[:, None] & k_ok[None, :], other=0.0)  # (BLOCK_M, BLOCK_K)
            w = tl.load(w_ptr + w_rows[None, :].to(tl.int64) * stride_wn + (ki * BLOCK_K + ks)[:, None],
                        mask=k_ok[:, None] & (w_rows < 2 * N)[None, :], other=0.0)  # (BLOCK_K, BLOCK_N) of W^T
            if IEEE:  # fp32 (the interpreter): exact products
                acc = tl.dot(x.to(tl.float32), w.to(tl.float32), acc, input_precision="ieee")
            else:
                acc = tl.dot(x, w, acc)
            if ki == k_steps - 1:
                _geglu_tile_store(acc, b_ptr, out_ptr, rows, w_rows, tile_n, M, N, stride_om, HAS_BIAS, GELU,
                                  BLOCK_M, BLOCK_N)
                acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)

    def launch(x, weight, bias, out, tile=None, gelu: int = 3) -> None:
        """Run the kernel with one of TILES (TILE if None), GELU as `_gelu` numbers it."""
        (m, k), n = x.shape, out.shape[1]
        block_m, block_n, block_k, warps, stages, per_sm = tile or TILE
        tiles = triton.cdiv(m, block_m) * triton.cdiv(2 * n, block_n)
        common = dict(HAS_BIAS=bias is not None, IEEE=x.dtype == torch.float32 or INTERPRETED, GELU=gelu,
                      BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_K=block_k, num_warps=warps, num_stages=stages)
        args = (x, weight, bias if bias is not None else weight, out, m, n, k, x.stride(0), weight.stride(0),
                out.stride(0))
        programs = min(tiles, per_sm * _sm_count(x.device))
        _geglu_kernel[(programs,)](*args, programs, **common)

    # An opaque custom op: compiled graphs call it as it is.
    @torch.library.custom_op("sdvideo::geglu", mutates_args=())
    def _geglu(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        out = x.new_empty(x.shape[0], weight.shape[0] // 2)
        launch(x, weight, bias, out)
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


def supported(x: torch.Tensor, dtype: torch.dtype) -> bool:
    """Whether `FusedGEGLU` takes the kernel for input `x` whose projection runs in `dtype`: inference (no
    autograd graph), a device where Triton runs it, half precision on the GPU (any float under the
    interpreter), at most MAX_K input channels."""
    return (ENABLED and HAVE_TRITON and x.device.type in DEVICES and not torch.is_grad_enabled()
            and x.shape[-1] <= MAX_K and (dtype in (torch.float16, torch.bfloat16) or INTERPRETED))


class FusedGEGLU(GEGLU):
    """diffusers' GEGLU whose inference forward is one fused matmul (`geglu`) where `supported`."""

    def forward(self, hidden_states: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        weight, bias = self.proj.weight, self.proj.bias
        autocast = hidden_states.device.type in DEVICES and torch.is_autocast_enabled(hidden_states.device.type)
        dtype = torch.get_autocast_dtype(hidden_states.device.type) if autocast else hidden_states.dtype
        if args or kwargs or not supported(hidden_states, dtype) or (not autocast and weight.dtype != dtype):
            return super().forward(hidden_states, *args, **kwargs)
        if autocast:  # as autocast runs the projection
            hidden_states, weight = hidden_states.to(dtype), weight.to(dtype)
            bias = None if bias is None else bias.to(dtype)
        return geglu(hidden_states, weight, bias)


def install_fused_geglu(module: nn.Module) -> int:
    """Make every diffusers `GEGLU` under `module` a `FusedGEGLU` in place (same parameters); returns how many."""
    count = 0
    for child in module.modules():
        if type(child) is GEGLU:
            child.__class__ = FusedGEGLU
            count += 1
    return count
