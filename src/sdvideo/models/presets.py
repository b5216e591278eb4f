"""Named sizes of the Stable Diffusion architecture.

Each preset gives the diffusers configs of the three networks of a latent diffusion model: the UNet
(`UNet2DConditionModel`), the autoencoder (`AutoencoderKL`) and the CLIP text encoder
(`CLIPTextModel`). `sd15` and `sd21` are the real sizes (used with random weights to measure memory
and speed); `tiny` is for tests; `demo` is the small model that `sdvideo demo` trains on a CPU.
"""

from __future__ import annotations

import copy
from typing import Any

_SD_DOWN = ("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D")
_SD_UP = ("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D")

_SD_VAE = dict(
    in_channels=3,
    out_channels=3,
    down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4,
    block_out_channels=(128, 256, 512, 512),
    layers_per_block=2,
    latent_channels=4,
    norm_num_groups=32,
    sample_size=512,
    scaling_factor=0.18215,
)

PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    # Stable Diffusion 1.5: 859.5 M UNet parameters, CLIP ViT-L/14 text encoder (768-d tokens).
    "sd15": dict(
        unet=dict(
            sample_size=64,
            in_channels=4,
            out_channels=4,
            down_block_types=_SD_DOWN,
            up_block_types=_SD_UP,
            block_out_channels=(320, 640, 1280, 1280),
            layers_per_block=2,
            cross_attention_dim=768,
            attention_head_dim=8,
            norm_num_groups=32,
        ),
        vae=_SD_VAE,
        text_encoder=dict(
            vocab_size=49408,
            hidden_size=768,
            intermediate_size=3072,
            num_hidden_layers=12,
            num_attention_heads=12,
            max_position_embeddings=77,
            hidden_act="quick_gelu",
            projection_dim=768,
        ),
        scheduler=dict(prediction_type="epsilon"),
    ),
    # Stable Diffusion 2.1: linear projections, 64-d attention heads, OpenCLIP ViT-H (1024-d tokens).
    "sd21": dict(
        unet=dict(
            sample_size=96,
            in_channels=4,
            out_channels=4,
            down_block_types=_SD_DOWN,
            up_block_types=_SD_UP,
            block_out_channels=(320, 640, 1280, 1280),
            layers_per_block=2,
            cross_attention_dim=1024,
            attention_head_dim=(5, 10, 20, 20),
            use_linear_projection=True,
            norm_num_groups=32,
        ),
        vae=dict(_SD_VAE, sample_size=768),
        text_encoder=dict(
            vocab_size=49408,
            hidden_size=1024,
            intermediate_size=4096,
            num_hidden_layers=23,
            num_attention_heads=16,
            max_position_embeddings=77,
            hidden_act="gelu",
            projection_dim=512,
        ),
        scheduler=dict(prediction_type="v_prediction"),
    ),
    # Smallest network with every SD block type (cross-attention down/up, plain down/up, mid
    # cross-attention): fast tests on a CPU.
    "tiny": dict(
        unet=dict(
            sample_size=8,
            in_channels=4,
            out_channels=4,
            down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
            block_out_channels=(32, 64),
            layers_per_block=1,
            cross_attention_dim=32,
            attention_head_dim=8,
            norm_num_groups=32,
        ),
        vae=dict(
            in_channels=3,
            out_channels=3,
            down_block_types=("DownEncoderBlock2D",) * 2,
            up_block_types=("UpDecoderBlock2D",) * 2,
            block_out_channels=(32, 32),
            layers_per_block=1,
            latent_channels=4,
            norm_num_groups=32,
            sample_size=16,
            scaling_factor=0.18215,
        ),
        text_encoder=dict(
            vocab_size=514,
            hidden_size=32,
            intermediate_size=37,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=77,
            hidden_act="quick_gelu",
            projection_dim=32,
        ),
        scheduler=dict(prediction_type="epsilon"),
    ),
    # The CPU demo: 96 px frames -> 24x24 latents (the autoencoder downsamples 4x, not 8x, so that
    # a small latent still holds a recognisable scene).
    "demo": dict(
        unet=dict(
            sample_size=24,
            in_channels=4,
            out_channels=4,
            down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
            block_out_channels=(32, 64, 64),
            layers_per_block=1,
            cross_attention_dim=64,
            attention_head_dim=8,
            norm_num_groups=32,
        ),
        vae=dict(
            in_channels=3,
            out_channels=3,
            down_block_types=("DownEncoderBlock2D",) * 3,
            up_block_types=("UpDecoderBlock2D",) * 3,
            block_out_channels=(16, 32, 64),
            layers_per_block=1,
            latent_channels=4,
            norm_num_groups=16,
            sample_size=96,
            scaling_factor=1.0,
        ),
        text_encoder=dict(
            vocab_size=514,
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=77,
            hidden_act="quick_gelu",
            projection_dim=64,
        ),
        scheduler=dict(prediction_type="epsilon"),
    ),
}


def preset(name: str) -> dict[str, dict[str, Any]]:
    """A deep copy of the named preset's configs: keys `unet`, `vae`, `text_encoder`, `scheduler`."""
    if name not in PRESETS:
        raise ValueError(f"unknown size preset {name!r}; choose one of {', '.join(sorted(PRESETS))}")
    return copy.deepcopy(PRESETS[name])


def unet_config(name: str) -> dict[str, Any]:
    """The `UNet2DConditionModel` config of a preset."""
    return preset(name)["unet"]
