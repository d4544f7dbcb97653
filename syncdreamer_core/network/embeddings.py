"""Sinusoidal timestep embedding shared by the UNet and the volume networks."""

from __future__ import annotations

import math

import torch
from torch import nn


def sinusoidal_embedding(timesteps: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """[B] (possibly fractional) timesteps -> [B, dim]; first half cos, second half sin."""
    half = dim // 2
    freqs = torch.exp(
        -math.log(max_period) * torch.arange(half, dtype=torch.float32, device=timesteps.device) / half
    )
    args = timesteps[:, None].float() * freqs[None]
    embedding = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        embedding = torch.cat([embedding, torch.zeros_like(embedding[:, :1])], dim=-1)
    return embedding


class TimestepMLP(nn.Sequential):
    """Sinusoidal features -> Linear - SiLU - Linear (keys ``0`` and ``2`` as in the checkpoint)."""

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__(nn.Linear(in_dim, out_dim), nn.SiLU(), nn.Linear(out_dim, out_dim))
        self.in_dim = in_dim

    def embed(self, timesteps: torch.Tensor) -> torch.Tensor:
        """[B] timesteps -> [B, out_dim] in the module's dtype."""
        features = sinusoidal_embedding(timesteps, self.in_dim)
        return self(features.to(self[0].weight.dtype))
