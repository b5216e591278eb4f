"""Estimate the peak GPU memory of a training step without a GPU (for `sdvideo train --dry-run`).

The model is built on PyTorch's meta device (shapes, no data) and one forward pass is traced with
saved-tensor hooks, which see every activation autograd keeps for backward. Attention is counted as
flash attention keeps it (inputs, output and a log-sum-exp row, never the score matrix). To that come
the weights (frozen ones in half precision), gradients and optimizer states of the trainable ones,
and a transient term for the largest backward temporaries.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

GiB = 1024**3


class _FlashLikeAttention(torch.autograd.Function):
    """SDPA stand-in that saves what a flash kernel saves: q, k, v, output and a float32 LSE."""

    @staticmethod
    def forward(ctx, q, k, v):
        out = torch.empty_like(q.expand(*q.shape[:-1], v.shape[-1]))
        lse = torch.empty(q.shape[:-1], dtype=torch.float32, device=q.device)
        ctx.save_for_backward(q, k, v, out, lse)
        return out

    @staticmethod
    def backward(ctx, grad):  # never run: the estimate only traces the forward
        raise NotImplementedError


def _sdpa(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, **_: Any):
    return _FlashLikeAttention.apply(q, k, v)


def saved_activation_bytes(model: torch.nn.Module, inputs: dict[str, Any]) -> int:
    """Bytes of distinct tensors autograd saves during `model(**inputs)` (meta tensors)."""
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor):
        if t.requires_grad and isinstance(t, torch.nn.Parameter):
            return t  # parameters are counted with the weights
        key = id(t.untyped_storage()) if t.device.type != "meta" else id(t)
        nbytes = t.numel() * t.element_size()
        seen[key] = max(seen.get(key, 0), nbytes)
        return t

    original = F.scaled_dot_product_attention
    F.scaled_dot_product_attention = _sdpa
    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            model(**inputs)
    finally:
        F.scaled_dot_product_attention = original
    return sum(seen.values())


def estimate_training_memory(
    unet_config: dict[str, Any],
    temporal: dict[str, Any],
    batch_size: int,
    frames: int,
    latent_size: int,
    text_tokens: int = 77,
    mixed_precision: str = "bf16",
    optimizer: str = "adamw8bit",
    train: str = "temporal",
    gradient_checkpointing: str = "none",
) -> dict[str, float]:
    """Peak allocated GPU memory (GiB) of one training step, and its parts."""
    from ..models.video_unet import VideoUNet

    half = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(mixed_precision)
    act_dtype = half or torch.float32
    with torch.device("meta"):
        model = VideoUNet(unet_config=unet_config, **temporal)
        if train == "temporal":
            model.freeze_spatial()
        model.set_gradient_checkpointing(gradient_checkpointing)
        model.train()
        trainable = [p for p in model.parameters() if p.requires_grad]
        frozen = [p for p in model.parameters() if not p.requires_grad]
        if half is not None:
            for p in frozen:
                p.data = p.data.to(half)
        # Under autocast the matmuls run in half precision: trace with half weights and inputs.
        for p in trainable:
            p.data = p.data.to(act_dtype)
        sample = torch.empty(batch_size, unet_config.get("in_channels", 4), frames, latent_size, latent_size, dtype=act_dtype)
        text = torch.empty(batch_size, text_tokens, unet_config["cross_attention_dim"], dtype=act_dtype)
        activations = saved_activation_bytes(
            model, dict(sample=sample, timestep=torch.zeros(batch_size, dtype=torch.long), encoder_hidden_states=text,
                        fps=torch.ones(batch_size))
        )
    n_train = sum(p.numel() for p in trainable)
    n_frozen = sum(p.numel() for p in frozen)
    weight_bytes = n_frozen * (2 if half is not None else 4) + n_train * 4
    grad_bytes = n_train * 4
    optimizer_bytes = n_train * (2 + 0.1 if optimizer.startswith("adamw8bit") else 8)
    # Backward holds a layer's input gradients and recomputed temporaries at once: about the largest
    # single activation, a few times over, on top of what forward saved.
    largest_activation = batch_size * frames * unet_config["block_out_channels"][0] * latent_size**2 * act_dtype.itemsize
    transient = 4 * largest_activation
    total = weight_bytes + grad_bytes + optimizer_bytes + activations + transient
    return dict(
        total_gib=total / GiB, weights_gib=weight_bytes / GiB, gradients_gib=grad_bytes / GiB,
        optimizer_gib=optimizer_bytes / GiB, activations_gib=activations / GiB, transient_gib=transient / GiB,
        trainable_params=n_train, frozen_params=n_frozen,
    )
