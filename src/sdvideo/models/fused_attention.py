"""Spatial attention with its input projections as one matmul: query, key and value (self-attention) or
key and value (cross-attention to the text) from one weight concatenated at each call.

diffusers' `AttnProcessor2_0` runs three (c -> c) matmuls over the same input; one (c -> 3c) matmul
reads the input once, launches one kernel instead of three, and its wider output tiles the GPU better.
In backward, the input gradient is one matmul too instead of three plus two additions. The weights are
concatenated inside the call (a copy of 3 c^2 values, small beside the (tokens, c) activations), not
stored fused: the state dict, dtype changes, loading and training of the spatial weights all work as
before, and autograd hands each weight its own gradient when it trains.

Attention modules this processor does not cover (a spatial norm, group norm, attention masks, q/k
norms, 4-D inputs, adapters replacing `to_q`) run diffusers' own processor unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.models.attention_processor import Attention, AttnProcessor2_0
from torch import nn


def _concatenated(layers: list[nn.Linear]) -> tuple[torch.Tensor, torch.Tensor | None]:
    weight = torch.cat([layer.weight for layer in layers])  # (n * c_out, c_in)
    bias = None if layers[0].bias is None else torch.cat([layer.bias for layer in layers])
    return weight, bias


def covers(attn: Attention) -> bool:
    """Whether `FusedProjectionAttnProcessor` computes what `AttnProcessor2_0` would for this module."""
    projections = (attn.to_q, attn.to_k, attn.to_v)
    return (
        all(type(p) is nn.Linear for p in projections)  # not a LoRA or other adapter layer
        and len({p.bias is None for p in projections}) == 1
        and attn.spatial_norm is None and attn.group_norm is None
        and attn.norm_q is None and attn.norm_k is None
        and not attn.residual_connection
    )


class FusedProjectionAttnProcessor:
    """`AttnProcessor2_0`'s computation with fused input projections (see the module docstring)."""

    def __init__(self) -> None:
        self.fallback = AttnProcessor2_0()

    def __call__(self, attn: Attention, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor | None = None,
                 attention_mask: torch.Tensor | None = None, temb: torch.Tensor | None = None, *args, **kwargs) -> torch.Tensor:
        if hidden_states.ndim != 3 or attention_mask is not None or not covers(attn):
            return self.fallback(attn, hidden_states, encoder_hidden_states, attention_mask, temb)
        # hidden_states: (batch, tokens, c); encoder_hidden_states: (batch, text tokens, c_text) or None.
        if encoder_hidden_states is None:
            query, key, value = F.linear(hidden_states, *_concatenated([attn.to_q, attn.to_k, attn.to_v])).chunk(3, dim=-1)
        else:
            query = attn.to_q(hidden_states)
            if attn.norm_cross:
                encoder_hidden_states = attn.norm_encoder_hidden_states(encoder_hidden_states)
            key, value = F.linear(encoder_hidden_states, *_concatenated([attn.to_k, attn.to_v])).chunk(2, dim=-1)
        head_dim = key.shape[-1] // attn.heads
        # (batch, tokens, heads * head_dim) -> (batch, heads, tokens, head_dim): views of the fused output
        query, key, value = (x.unflatten(-1, (attn.heads, head_dim)).transpose(1, 2) for x in (query, key, value))
        out = F.scaled_dot_product_attention(query, key, value)
        out = out.transpose(1, 2).flatten(2).to(query.dtype)  # (batch, tokens, heads * head_dim)
        out = attn.to_out[1](attn.to_out[0](out))  # projection, dropout
        return out / attn.rescale_output_factor


def fuse_attention_projections(model: nn.Module) -> int:
    """Give every diffusers `Attention` in `model` the fused-projection processor; returns how many."""
    processor = FusedProjectionAttnProcessor()
    modules = [m for m in model.modules() if isinstance(m, Attention)]
    for module in modules:
        module.set_processor(processor)
    return len(modules)
