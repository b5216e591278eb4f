"""Frame-rate conditioning: an embedding of the clip's frames per second added to the time embedding."""

from __future__ import annotations

import torch
from diffusers.models.embeddings import get_timestep_embedding
from torch import nn


class FpsEmbedding(nn.Module):
    """fps (n,) -> (n, time_embed_dim), zero at initialisation so an fps-conditioned model starts unchanged."""

    def __init__(self, time_embed_dim: int, features: int = 256) -> None:
        super().__init__()
        self.features = features
        self.mlp = nn.Sequential(nn.Linear(features, time_embed_dim), nn.SiLU(), nn.Linear(time_embed_dim, time_embed_dim))
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)

    def forward(self, fps: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        # Sinusoidal features of fps (the same form as the diffusion timestep's features).
        feats = get_timestep_embedding(fps.float(), self.features, flip_sin_to_cos=True, downscale_freq_shift=0)
        return self.mlp(feats.to(self.mlp[0].weight.dtype)).to(dtype)
