"""AdamW with 8-bit states, one fused kernel launch a step (`--optimizer adamw8bit`).

Why our own: the 8-bit AdamWs of torchao and bitsandbytes spend most of a step in Python per
parameter. At the SD 1.5 video UNet's 234.6 M trainable parameters (268 tensors) their steps take tens
of milliseconds against fused float32 AdamW's few (`bench/bench_optimizer.py`, BENCHMARKS.md); torchao's
is a quarter of a 2 x 16 training step. Here a step is one Triton kernel launch for all parameters (a
table of their addresses) that reads the float32 weights and gradients and the 8-bit states and writes
them back, 16 bytes of traffic per value against fused AdamW's 28: inside a 2 x 16 step it costs no more
than fused AdamW, for 1.31 GiB less optimizer state.

States, per block of 256 values with one float32 scale (the block's largest magnitude), as codes of
logarithmically spaced levels: the first moment signed (a sign bit, 127 levels 2^(1/8) apart down to
2^-15.75 of the scale, and zero), the *square root* of the second moment unsigned (255 levels
2^(1/16) apart, and zero). A logarithmic grid keeps every value's relative error under 4.4 % (first
moment) and 2.2 % (root of the second) however the values in a block spread, as bitsandbytes' dynamic
quantization does; storing the root halves the second moment's range in log space, so small
denominators are not flushed to zero (that would turn an update into m / eps). Tensors under 4,096
values keep float32 states, as bitsandbytes and torchao do.

Where Triton does not run (the CPU, unless tests set `TRITON_INTERPRET=1`), `reference_update` does
the same arithmetic with tensor ops.
"""

from __future__ import annotations

import importlib.util
import math
import os
from collections.abc import Iterable

import torch

BLOCK = 256  # values per quantisation block (one float32 scale each)
GROUP = 8  # quantisation blocks per kernel program (2,048 values: 8 per thread of 8 warps)
MIN_QUANTIZED = 4096  # smaller tensors keep float32 states
M_LEVELS, M_PER_OCTAVE = 127, 8  # first moment: sign bit + 7-bit level
R_LEVELS, R_PER_OCTAVE = 255, 16  # root of the second moment: 8-bit level

HAVE_TRITON = importlib.util.find_spec("triton") is not None
INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1"

if HAVE_TRITON:
    import triton
    import triton.language as tl

    @triton.jit
    def _decode(codes, scale, SIGNED: tl.constexpr, LEVELS: tl.constexpr, PER_OCTAVE: tl.constexpr):
        codes = codes.to(tl.int32)
        level = codes & LEVELS
        value = tl.where(level > 0, scale * tl.exp2((level - LEVELS).to(tl.float32) / PER_OCTAVE), 0.0)
        if SIGNED:
            value = tl.where(codes > LEVELS, -value, value)
        return value

    @triton.jit
    def _encode(x, scale, SIGNED: tl.constexpr, LEVELS: tl.constexpr, PER_OCTAVE: tl.constexpr):
        ratio = tl.abs(x) / tl.maximum(scale, 1e-30)
        level = tl.floor(PER_OCTAVE * tl.log2(tl.maximum(ratio, 1e-38)) + 0.5) + LEVELS
        level = tl.minimum(tl.maximum(level, 0.0), LEVELS).to(tl.int32)
        level = tl.where(ratio > 0, level, 0)
        if SIGNED:
            level = tl.where((x < 0) & (level > 0), level | (LEVELS + 1), level)
        return level.to(tl.uint8)

    @triton.jit
    def _adamw_kernel(pointers, sizes, corrections, program_tensor, program_block, lr, beta1, beta2, eps,
                      weight_decay, QUANTIZED: tl.constexpr, BLOCK: tl.constexpr, GROUP: tl.constexpr,
                      M_LEVELS: tl.constexpr, M_PER_OCTAVE: tl.constexpr, R_LEVELS: tl.constexpr,
                      R_PER_OCTAVE: tl.constexpr):
        # One launch for many tensors. A program updates GROUP quantisation blocks of BLOCK values, a
        # (GROUP, BLOCK) tile, of tensor `program_tensor[pid]` from its block `program_block[pid]` on.
        # pointers: (tensors, 6) int64 addresses of the weight, gradient, first moment (codes), its
        # scales, root of the second moment (codes), its scales; float32 states where not QUANTIZED.
        pid = tl.program_id(0)
        t = tl.load(program_tensor + pid).to(tl.int64)
        n = tl.load(sizes + t)
        bias_correction1 = tl.load(corrections + 2 * t)
        root_bias_correction2 = tl.load(corrections + 2 * t + 1)
        # every address is 16-byte aligned (`_launch` checks): say so, for vectorised loads and stores
        p_ptr = tl.multiple_of(tl.load(pointers + 6 * t).to(tl.pointer_type(tl.float32)), 16)
        g_ptr = tl.multiple_of(tl.load(pointers + 6 * t + 1).to(tl.pointer_type(tl.float32)), 16)
        m_scale_ptr = tl.multiple_of(tl.load(pointers + 6 * t + 3).to(tl.pointer_type(tl.float32)), 16)
        r_scale_ptr = tl.multiple_of(tl.load(pointers + 6 * t + 5).to(tl.pointer_type(tl.float32)), 16)
        if QUANTIZED:
            m_ptr = tl.multiple_of(tl.load(pointers + 6 * t + 2).to(tl.pointer_type(tl.uint8)), 16)
            r_ptr = tl.multiple_of(tl.load(pointers + 6 * t + 4).to(tl.pointer_type(tl.uint8)), 16)
        else:
            m_ptr = tl.multiple_of(tl.load(pointers + 6 * t + 2).to(tl.pointer_type(tl.float32)), 16)
            r_ptr = tl.multiple_of(tl.load(pointers + 6 * t + 4).to(tl.pointer_type(tl.float32)), 16)
        blocks = tl.load(program_block + pid).to(tl.int64) + tl.arange(0, GROUP)
        offsets = blocks[:, None] * BLOCK + tl.arange(0, BLOCK)[None, :]
        mask = offsets < n
        block_mask = blocks * BLOCK < n
        p = tl.load(p_ptr + offsets, mask=mask, other=0.0)
        g = tl.load(g_ptr + offsets, mask=mask, other=0.0)
        if QUANTIZED:
            m = _decode(tl.load(m_ptr + offsets, mask=mask, other=0),
                        tl.load(m_scale_ptr + blocks, mask=block_mask, other=0.0)[:, None], True, M_LEVELS, M_PER_OCTAVE)
            r = _decode(tl.load(r_ptr + offsets, mask=mask, other=0),
                        tl.load(r_scale_ptr + blocks, mask=block_mask, other=0.0)[:, None], False, R_LEVELS,
                        R_PER_OCTAVE)
        else:
            m = tl.load(m_ptr + offsets, mask=mask, other=0.0)
            r = tl.load(r_ptr + offsets, mask=mask, other=0.0)
        m = beta1 * m + (1.0 - beta1) * g
        r = tl.sqrt(beta2 * r * r + (1.0 - beta2) * g * g)
        p = p * (1.0 - lr * weight_decay) - (lr / bias_correction1) * m / (r / root_bias_correction2 + eps)
        tl.store(p_ptr + offsets, p, mask=mask)
        if QUANTIZED:
            m_scale = tl.max(tl.where(mask, tl.abs(m), 0.0), axis=1)
            r_scale = tl.max(tl.where(mask, r, 0.0), axis=1)
            tl.store(m_scale_ptr + blocks, m_scale, mask=block_mask)
            tl.store(r_scale_ptr + blocks, r_scale, mask=block_mask)
            tl.store(m_ptr + offsets, _encode(m, m_scale[:, None], True, M_LEVELS, M_PER_OCTAVE), mask=mask)
            tl.store(r_ptr + offsets, _encode(r, r_scale[:, None], False, R_LEVELS, R_PER_OCTAVE), mask=mask)
        else:
            tl.store(m_ptr + offsets, m, mask=mask)
            tl.store(r_ptr + offsets, r, mask=mask)


def decode(codes: torch.Tensor, scale: torch.Tensor, signed: bool) -> torch.Tensor:
    """(blocks, BLOCK) uint8 codes and (blocks,) scales -> float32 values."""
    levels, per_octave = (M_LEVELS, M_PER_OCTAVE) if signed else (R_LEVELS, R_PER_OCTAVE)
    codes = codes.to(torch.int32)
    level = codes & levels
    value = torch.where(level > 0, scale[:, None] * torch.exp2((level - levels).float() / per_octave), 0.0)
    return torch.where(codes > levels, -value, value) if signed else value


def encode(x: torch.Tensor, scale: torch.Tensor, signed: bool) -> torch.Tensor:
    """(blocks, BLOCK) float32 values and their blocks' largest magnitudes -> uint8 codes."""
    levels, per_octave = (M_LEVELS, M_PER_OCTAVE) if signed else (R_LEVELS, R_PER_OCTAVE)
    ratio = x.abs() / scale.clamp_min(1e-30)[:, None]
    level = torch.floor(per_octave * torch.log2(ratio.clamp_min(1e-38)) + 0.5) + levels
    level = torch.where(ratio > 0, level.clamp(0, levels).to(torch.int32), 0)
    if signed:
        level = torch.where((x < 0) & (level > 0), level | (levels + 1), level)
    return level.to(torch.uint8)


def _blocks(flat: torch.Tensor) -> torch.Tensor:
    """A flat tensor zero-padded to whole blocks, as (blocks, BLOCK)."""
    return torch.nn.functional.pad(flat, (0, -flat.numel() % BLOCK)).view(-1, BLOCK)


def _memory_order(t: torch.Tensor) -> list[int]:
    """t's dimensions from outermost to innermost in memory (a channels-last weight: out, kernel..., in)."""
    return sorted(range(t.dim()), key=lambda d: -t.stride(d))


def _in_memory_order(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """t's values flattened in the order `like` lays its values out in memory (a view where it can)."""
    return t.permute(_memory_order(like)).reshape(-1)


def reference_update(p: torch.Tensor, grad: torch.Tensor, state: dict, lr: float, beta1: float, beta2: float,
                     eps: float, weight_decay: float, bias_correction1: float, root_bias_correction2: float) -> None:
    """The kernel's arithmetic with tensor ops, in place on `p` and `state`; values in p's memory order,
    as the kernel reads them."""
    quantized = "exp_avg_scale" in state
    g = _in_memory_order(grad, p).float()
    if quantized:
        m = decode(state["exp_avg"].view(-1, BLOCK), state["exp_avg_scale"], True).view(-1)[: p.numel()]
        r = decode(state["exp_avg_root"].view(-1, BLOCK), state["exp_avg_root_scale"], False).view(-1)[: p.numel()]
    else:
        m, r = _in_memory_order(state["exp_avg"], p), _in_memory_order(state["exp_avg_root"], p)
    m = beta1 * m + (1 - beta1) * g
    r = torch.sqrt(beta2 * r * r + (1 - beta2) * g * g)
    flat_p = _in_memory_order(p, p)  # a view of p's storage (p is dense)
    flat_p.mul_(1 - lr * weight_decay).sub_(((lr / bias_correction1) * m / (r / root_bias_correction2 + eps)).to(p.dtype))
    if quantized:
        m_blocks, r_blocks = _blocks(m), _blocks(r)
        state["exp_avg_scale"].copy_(m_blocks.abs().amax(dim=1))
        state["exp_avg_root_scale"].copy_(r_blocks.amax(dim=1))
        state["exp_avg"].copy_(encode(m_blocks, state["exp_avg_scale"], True).view(-1))
        state["exp_avg_root"].copy_(encode(r_blocks, state["exp_avg_root_scale"], False).view(-1))
    else:
        _in_memory_order(state["exp_avg"], p).copy_(m)
        _in_memory_order(state["exp_avg_root"], p).copy_(r)


def _dense(t: torch.Tensor) -> bool:
    return t.permute(_memory_order(t)).is_contiguous()


def uses_kernel(p: torch.Tensor, grad: torch.Tensor) -> bool:
    """The Triton kernel updates p (flat, in memory order): Triton there, p dense and 16-byte aligned, its float32
    gradient laid out alike (the states are fresh allocations: aligned)."""
    return (HAVE_TRITON and (p.device.type == "cuda" or INTERPRETED) and _dense(p) and grad.stride() == p.stride()
            and grad.dtype == torch.float32 and p.data_ptr() % 16 == 0 and grad.data_ptr() % 16 == 0)


def _program_tables(sizes: tuple[int, ...], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """For tensors of these sizes, each kernel program's tensor index and first block (int32, on device)."""
    per_tensor = [-(-n // (BLOCK * GROUP)) for n in sizes]
    tensor = torch.repeat_interleave(torch.arange(len(sizes), dtype=torch.int32), torch.tensor(per_tensor))
    first = torch.cat([torch.arange(k, dtype=torch.int32) * GROUP for k in per_tensor])
    return tensor.to(device), first.to(device)


def _launch(items: list[tuple[torch.Tensor, torch.Tensor, dict, float, float]], quantized: bool,
            tables: dict, lr: float, beta1: float, beta2: float, eps: float, weight_decay: float) -> None:
    """One kernel launch updating every (weight, gradient, state, bias corrections) in `items`."""
    device = items[0][0].device
    sizes = tuple(p.numel() for p, *_ in items)
    key = (device, quantized, sizes)
    if key not in tables:  # the programs' layout depends on the sizes only: made once
        if len(tables) >= 8:
            tables.clear()
        tables[key] = (*_program_tables(sizes, device), torch.tensor(sizes, dtype=torch.int64, device=device))
    program_tensor, program_block, size_table = tables[key]
    addresses, corrections = [], []
    for p, grad, state, correction1, root_correction2 in items:
        m, r = state["exp_avg"], state["exp_avg_root"]
        addresses += [p.data_ptr(), grad.data_ptr(), m.data_ptr(), state.get("exp_avg_scale", m).data_ptr(),
                      r.data_ptr(), state.get("exp_avg_root_scale", r).data_ptr()]
        corrections += [correction1, root_correction2]
    pin = device.type == "cuda"  # (pinned: the copy does not wait for the GPU to drain)
    pointers = torch.tensor(addresses, dtype=torch.int64).pin_memory() if pin else torch.tensor(addresses)
    corrections = torch.tensor(corrections, dtype=torch.float32)
    corrections = corrections.pin_memory() if pin else corrections
    _adamw_kernel[(program_tensor.numel(),)](
        pointers.to(device, non_blocking=True), size_table, corrections.to(device, non_blocking=True), program_tensor,
        program_block, lr, beta1, beta2, eps, weight_decay, QUANTIZED=quantized, BLOCK=BLOCK, GROUP=GROUP,
        M_LEVELS=M_LEVELS, M_PER_OCTAVE=M_PER_OCTAVE, R_LEVELS=R_LEVELS, R_PER_OCTAVE=R_PER_OCTAVE, num_warps=8)


class AdamW8bit(torch.optim.Optimizer):
    """AdamW (decoupled weight decay, bias-corrected) whose moments are stored in 8 bits per value
    (module docstring); float32 parameters updated in place, one kernel launch for all of them."""

    def __init__(self, params: Iterable[torch.nn.Parameter], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2) -> None:
        if lr < 0 or eps < 0 or not all(0 <= b < 1 for b in betas):
            raise ValueError(f"invalid AdamW8bit settings: lr={lr}, betas={betas}, eps={eps}")
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))
        self._program_tables: dict = {}  # (device, 8-bit, tensor sizes) -> the kernel's program tables

    @staticmethod
    def _init_state(p: torch.Tensor) -> dict:
        if p.numel() < MIN_QUANTIZED:
            zeros = torch.zeros_like(p, dtype=torch.float32)  # p's strides: the kernel pairs them by memory order
            return dict(step=0, exp_avg=zeros, exp_avg_root=zeros.clone())
        blocks = -(-p.numel() // BLOCK)
        return dict(step=0, exp_avg=torch.zeros(blocks * BLOCK, dtype=torch.uint8, device=p.device),
                    exp_avg_scale=torch.zeros(blocks, device=p.device),
                    exp_avg_root=torch.zeros(blocks * BLOCK, dtype=torch.uint8, device=p.device),
                    exp_avg_root_scale=torch.zeros(blocks, device=p.device))

    STATE_KEYS = ({"step", "exp_avg", "exp_avg_root"}, {"step", "exp_avg", "exp_avg_scale", "exp_avg_root", "exp_avg_root_scale"})

    def load_state_dict(self, state_dict: dict) -> None:
        for entry in state_dict["state"].values():
            if set(entry) not in self.STATE_KEYS:
                raise ValueError(
                    f"the optimizer state holds {sorted(entry)}, not sdvideo's 8-bit AdamW's: it was written by another "
                    "optimizer (AdamW: resume with --optimizer adamw; torchao's or bitsandbytes' 8-bit AdamW, which "
                    "sdvideo used before 2026-11-26: start a new run from the checkpoint's unet/ weights)")
        super().load_state_dict(state_dict)
        for state in self.state.values():  # torch casts every state tensor to its parameter's dtype: codes back to 8 bits
            if "exp_avg_scale" in state:
                state["exp_avg"], state["exp_avg_root"] = state["exp_avg"].to(torch.uint8), state["exp_avg_root"].to(torch.uint8)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            lr, eps, weight_decay = float(group["lr"]), group["eps"], group["weight_decay"]
            on_kernel: dict[tuple[torch.device, bool], list] = {}  # (device, 8-bit states) -> tensors for one launch
            for param in group["params"]:
                if param.grad is None:
                    continue
                if param.grad.is_sparse:
                    raise RuntimeError("AdamW8bit does not support sparse gradients")
                if param.dtype != torch.float32:
                    raise TypeError(f"AdamW8bit updates float32 parameters, got {param.dtype} (keep master weights in fp32)")
                # a sharded (DTensor) parameter: this process updates its own shard
                p = param.to_local() if hasattr(param, "to_local") else param
                grad = param.grad.to_local() if hasattr(param.grad, "to_local") else param.grad
                state = self.state[param]
                if not state:  # (float32 states loaded from a checkpoint get p's layout in `load_checkpoint`)
                    state.update(self._init_state(p))
                state["step"] = int(state["step"]) + 1  # (a checkpoint may hand it back as a 0-d tensor)
                corrections = (1 - beta1 ** state["step"], math.sqrt(1 - beta2 ** state["step"]))
                if uses_kernel(p, grad):
                    on_kernel.setdefault((p.device, "exp_avg_scale" in state), []).append((p, grad, state, *corrections))
                else:
                    reference_update(p, grad, state, lr, beta1, beta2, eps, weight_decay, *corrections)
            for (_, quantized), items in on_kernel.items():
                _launch(items, quantized, self._program_tables, lr, beta1, beta2, eps, weight_decay)
        return loss
