"""Synchronized multiview sampling for the command line and the pipeline.

Each instance is sampled on its own stream of random numbers (``noise.py``): its
starting noise, then one draw per noisy DDIM step, so candidate k of a batch is the
single run with seed + k. ``ddim`` with eta 1 is the reference sampler;
``dpmpp_2m`` reaches a similar result in fewer steps. Both are k-diffusion-style
functions over the sigma-space denoiser, the same ones a host drives.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..conditioning import Conditioning
from ..constants import LATENT_CHANNELS
from ..defaults import CFG, ETA, SEED, STEPS
from .ddim import sample_ddim
from .denoiser import SyncDenoiser
from .dpm_solver import sample_dpmpp_2m
from .noise import NoiseStream, instance_seed
from .schedule import ddim_timesteps, steps_run
from .sigma_denoiser import SigmaDenoiser

SAMPLERS = ("ddim", "dpmpp_2m")

#: Called after every step with (steps done, total steps of the run).
StepCallback = Callable[[int, int], None]


class SamplingError(RuntimeError):
    """Sampling produced no usable result."""


def check_guidance(cfg_scale, eta) -> None:
    for name, value in (("cfg", cfg_scale), ("eta", eta)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or abs(value) == float("inf"):
            raise ValueError(f"{name} must be a finite number, got {value!r}")
    if eta < 0:
        raise ValueError(f"eta must be >= 0, got {eta}")


def reference_sigmas(model: SigmaDenoiser, steps: int) -> torch.Tensor:
    """Noise levels of the reference's DDIM timesteps, then 0."""
    return torch.cat([model.schedule.t_to_sigma(ddim_timesteps(steps)), torch.zeros(1)])


@torch.inference_mode()
def sample(denoiser: SyncDenoiser, cond: Conditioning, steps: int = STEPS, cfg_scale: float = CFG, eta: float = ETA,
           sampler: str = "ddim", seed: int = SEED, callback: StepCallback | None = None) -> torch.Tensor:
    """Sample B x 16 view latents [B, N, 4, h, w] (scaled by 0.18215, like the input latent);
    instance n draws from the seed ``seed + n``."""
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; choose one of {', '.join(SAMPLERS)}")
    check_guidance(cfg_scale, eta)
    run = steps_run(steps)  # the official timesteps: more than ``steps`` where 1000 is not a multiple
    N = denoiser.view_count
    h, w = cond.input_latent.shape[-2:]
    shape = (N, LATENT_CHANNELS, h, w)
    results = []
    for n in range(cond.batch_size):
        stream = NoiseStream(instance_seed(seed, n), shape)
        model = SigmaDenoiser(denoiser, cond.instance(n), cfg_scale)
        sigmas = reference_sigmas(model, steps)
        x = stream().to(denoiser.model.device) * (1 + sigmas[0] ** 2) ** 0.5
        done = n * run

        def step_done(info, done=done):
            if callback is not None:
                callback(done + info["i"] + 1, cond.batch_size * run)

        if sampler == "ddim":
            latents = sample_ddim(model, x, sigmas, callback=step_done, eta=eta, noise_sampler=stream,
                                  terminal_sigma=float(model.schedule.sigma_min))
        else:
            latents = sample_dpmpp_2m(model, x, sigmas, callback=step_done)
        results.append(latents.float().reshape(1, *shape))
    latents = torch.cat(results)
    check_finite_latents(latents)
    return latents


def check_finite_latents(latents: torch.Tensor) -> None:
    if not torch.isfinite(latents).all():
        bad = (~torch.isfinite(latents.reshape(latents.shape[0], -1))).any(1).nonzero().flatten().tolist()
        raise SamplingError(
            f"sampling produced NaN or infinite latents (instances {bad}): the network's output is not finite. "
            "Half precision can overflow on some devices: try fp32 or bf16; check the checkpoint file.")
