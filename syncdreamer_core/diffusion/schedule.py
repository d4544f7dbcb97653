"""The DDPM noise schedule (1000 steps, "scaled linear" as Stable Diffusion 1.x) and
the reference's DDIM timesteps."""

from __future__ import annotations

import torch

from ..constants import BETA_END, BETA_START, NUM_TRAIN_TIMESTEPS

#: The most DDIM steps a user can ask for (from 500 on, every training timestep but 1000 runs).
MAX_STEPS = NUM_TRAIN_TIMESTEPS


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


def check_steps(steps) -> int:
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= MAX_STEPS:
        raise ValueError(f"steps must be an integer in 1..{MAX_STEPS}, got {steps!r}")
    return steps


def ddim_timesteps(steps: int) -> torch.Tensor:
    """The official "uniform" DDIM timesteps for ``steps``, noisiest first (long).

    The official sampler takes ``range(0, 1000, c) + 1`` with ``c = 1000 // steps`` and runs
    all of them: 50 steps run t = 1, 21, ..., 981; a count that does not divide 1000 runs more
    than asked (30 runs 31 steps, from t = 991; 6 runs 7, from t = 997). At some counts (3, 9,
    27, 36, 37, 101-111 and a few more) that list reaches t = 1000, which the schedule does not
    have, and the official code fails; there this drops t = 1000 and runs the rest of its list
    (what ComfyUI's ddim_uniform scheduler does at every count).
    """
    check_steps(steps)
    stride = NUM_TRAIN_TIMESTEPS // steps
    timesteps = torch.arange(0, NUM_TRAIN_TIMESTEPS, stride, dtype=torch.long) + 1
    return timesteps[timesteps < NUM_TRAIN_TIMESTEPS].flip(0)


def steps_run(steps: int) -> int:
    """How many DDIM steps a run asked for ``steps`` takes (see ``ddim_timesteps``)."""
    return len(ddim_timesteps(steps))


def official_fails_at(steps: int) -> bool:
    """Whether the official sampler fails at ``steps`` (its timesteps reach t = 1000)."""
    stride = NUM_TRAIN_TIMESTEPS // check_steps(steps)
    return (NUM_TRAIN_TIMESTEPS - 1) % stride == 0
