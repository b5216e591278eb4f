"""Self-attention's q, k and v from one matmul over the stacked weights, in compiled inference.

diffusers' `AttnProcessor2_0` projects q, k and v with three matmuls that each read the normalised tokens.
For SD's spatial self-attention in compiled half-precision inference `PackedQKVAttnProcessor` stacks the
three frozen weights in the graph (a copy of 3 x channels^2 values, a few microseconds) and runs one matmul
that reads the tokens once; SDPA takes q, k and v as views of its output. At the 64 x 64 level of a guided
16-frame call: 0.194 -> 0.146 ms (H100, run 89, `bench_ff_forms.py`). Every other call -- cross-attention,
masks, norms inside the attention, eager calls, training -- runs diffusers' own processor. The stacked
weights are made per call, not stored: no second copy of the weights, nothing to keep in step with them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.models.attention_processor import Attention, AttnProcessor2_0
from torch import nn

DEVICES = {"cuda"}  # where the packed form applies; tests add "cpu"
ENABLED = True  # off: always diffusers' processor (benchmarks compare the two)


def applies(attn: Attention, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor | None,
            attention_mask: torch.Tensor | None) -> bool:
    """Self-attention over (batch, tokens, channels) without masks or extra norms, in compiled inference
    on a device in DEVICES; the projections without bias."""
    if not ENABLED or hidden_states.device.type not in DEVICES or torch.is_grad_enabled():
        return False
    return (torch.compiler.is_compiling() and encoder_hidden_states is None and attention_mask is None
            and hidden_states.ndim == 3 and attn.spatial_norm is None and attn.group_norm is None
            and attn.norm_q is None and attn.norm_k is None and not attn.residual_connection
            and all(p.bias is None for p in (attn.to_q, attn.to_k, attn.to_v)))


class PackedQKVAttnProcessor(AttnProcessor2_0):
    """diffusers' `AttnProcessor2_0`, with q, k and v from one matmul where `applies`."""

    def __call__(self, attn: Attention, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor | None = None,
                 attention_mask: torch.Tensor | None = None, temb: torch.Tensor | None = None, *args, **kwargs):
        if args or kwargs or not applies(attn, hidden_states, encoder_hidden_states, attention_mask):
            return super().__call__(attn, hidden_states, encoder_hidden_states, attention_mask, temb, *args, **kwargs)
        batch, tokens, _ = hidden_states.shape
        weight = torch.cat([attn.to_q.weight, attn.to_k.weight, attn.to_v.weight])  # (3 * inner, channels)
        qkv = F.linear(hidden_states, weight)  # (batch, tokens, 3 * inner)
        q, k, v = qkv.view(batch, tokens, 3, attn.heads, -1).permute(2, 0, 3, 1, 4)  # (batch, heads, tokens, d)
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=0.0, is_causal=False)
        out = out.transpose(1, 2).reshape(batch, tokens, -1).to(q.dtype)
        out = attn.to_out[1](attn.to_out[0](out))  # projection, dropout
        return out / attn.rescale_output_factor


def install_packed_qkv(module: nn.Module) -> int:
    """Give every self-attention (`attn1`) of `module`'s diffusers transformer blocks that runs diffusers'
    `AttnProcessor2_0` a `PackedQKVAttnProcessor`; returns how many."""
    from diffusers.models.attention import BasicTransformerBlock

    count = 0
    for block in module.modules():
        if isinstance(block, BasicTransformerBlock) and type(block.attn1.processor) is AttnProcessor2_0:
            block.attn1.set_processor(PackedQKVAttnProcessor())
            count += 1
    return count
