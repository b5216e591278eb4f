"""Whether a layer's matmul runs in half precision: the question both inference-only matmul forms ask."""

from __future__ import annotations

import torch


def runs_in_half_precision(x: torch.Tensor) -> bool:
    """Whether a Linear on `x` computes in fp16/bf16: autocast's dtype where autocast is on for `x`'s device,
    else `x`'s own. Off CUDA any dtype counts (tests run these paths on the CPU in fp32). Callers check the
    device first: the autocast queries fail for devices like "meta"."""
    dtype = torch.get_autocast_dtype(x.device.type) if torch.is_autocast_enabled(x.device.type) else x.dtype
    return dtype in (torch.float16, torch.bfloat16) or x.device.type != "cuda"
