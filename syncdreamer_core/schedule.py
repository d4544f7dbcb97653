"""The DDPM noise schedule (1000 steps, "scaled linear" as Stable Diffusion 1.x)."""

from __future__ import annotations

import torch

from .constants import BETA_END, BETA_START, NUM_TRAIN_TIMESTEPS


def scaled_linear_betas(num_timesteps: int = NUM_TRAIN_TIMESTEPS) -> torch.Tensor:
    return torch.linspace(BETA_START**0.5, BETA_END**0.5, num_timesteps, dtype=torch.float32) ** 2


def schedule_buffers(betas: torch.Tensor) -> dict[str, torch.Tensor]:
    """The schedule tensors the official checkpoint stores, all float32 [T]."""
    alphas = 1.0 - betas
    alphas_cumprod = torch.cumprod(alphas, dim=0)
    alphas_cumprod_prev = torch.cat([torch.ones(1, dtype=alphas_cumprod.dtype), alphas_cumprod[:-1]])
    posterior_variance = betas * (1.0 - alphas_cumprod_prev) / (1.0 - alphas_cumprod)
    posterior_log_variance_clipped = torch.log(posterior_variance.clamp(min=1e-20)).clamp(min=-10)
    return {
        "betas": betas.float(),
        "alphas": alphas.float(),
        "alphas_cumprod": alphas_cumprod.float(),
        "sqrt_alphas_cumprod": alphas_cumprod.sqrt().float(),
        "sqrt_one_minus_alphas_cumprod": (1 - alphas_cumprod).sqrt().float(),
        "posterior_variance": posterior_variance.float(),
        "posterior_log_variance_clipped": posterior_log_variance_clipped.float(),
    }


def sigmas_from_alphas_cumprod(alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """Noise levels of the variance-exploding view used by k-diffusion samplers [T]."""
    return ((1 - alphas_cumprod) / alphas_cumprod) ** 0.5
