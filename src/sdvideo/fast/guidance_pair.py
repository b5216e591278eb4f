"""Classifier-free guidance's two halves share the layers before the text.

Guided sampling runs the UNet on one batch of two halves, [unconditional; conditional], made from the
same noisy latents, timestep, fps and known frames: only the text differs, and text enters at the first
cross-attention. Everything before it computes the same values for both halves. When a call says so
(`VideoUNet.forward(..., guidance_pair=True)`), the first resnet of the first down block and the first
spatial transformer's self-attention run on the first half only and their output serves both halves.
At 512 px those are the costliest layers before the text: two 3 x 3 and two temporal convolutions and
self-attention over 4,096 positions at 64 x 64 latents (BENCHMARKS.md has the time saved); in bf16 the
prediction moves by rounding only.

The sharing is done by forward hooks on those modules, installed by `install_guidance_pair` (which
`sdvideo.fast.enable_fast_inference` calls); without them a `guidance_pair=True` call runs both halves whole.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn

if TYPE_CHECKING:
    from ..models.temporal_wrappers import FrameContext


def shared_prefix_modules(unet: nn.Module) -> list[nn.Module]:
    """The modules of a diffusers `UNet2DConditionModel` whose inputs are the same for both halves of a
    guidance pair: the first down block's first resnet (it runs before any text) and, when that block
    has attention, its first transformer's self-attention (its input comes from that resnet alone)."""
    first = unet.down_blocks[0]
    shared: list[nn.Module] = [first.resnets[0]]
    attentions = getattr(first, "attentions", None)
    if attentions:
        transformer = getattr(attentions[0], "spatial", attentions[0])  # inside a SpatioTemporalTransformer
        block = transformer.transformer_blocks[0]
        if not block.only_cross_attention:  # else attn1 attends to the text too
            shared.append(block.attn1)
    return shared


def install_guidance_pair(unet: nn.Module, context: FrameContext) -> None:
    """Hook `shared_prefix_modules(unet)`: while `context.guidance_pair` is set, each runs on the first
    half of its batch and returns its output for both halves. Installing again only switches the context."""
    for module in shared_prefix_modules(unet):
        if not hasattr(module, "_guidance_pair_context"):
            module.register_forward_pre_hook(_first_half, with_kwargs=True)
            module.register_forward_hook(_both_halves)
        module._guidance_pair_context = context


def _first_half(module: nn.Module, args: tuple, kwargs: dict[str, Any]):
    if not module._guidance_pair_context.guidance_pair:
        return None
    n = args[0].shape[0]  # (batch * frames, ...): video-major, so each half holds whole videos

    def half(value: Any) -> Any:
        return value[: n // 2] if isinstance(value, torch.Tensor) and value.ndim and value.shape[0] == n else value

    return tuple(half(a) for a in args), {k: half(v) for k, v in kwargs.items()}


def _both_halves(module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor | None:
    if not module._guidance_pair_context.guidance_pair:
        return None
    return torch.cat([output, output])
