"""Synchronized multiview sampling with diffusers' schedulers.

``sample`` runs the reference sampler: DDIM with "uniform" timesteps (diffusers'
``leading`` spacing with ``steps_offset=1`` gives 1, 21, ..., 981 for 50 steps, and
any step count works, unlike the reference), eta=1 by default with fresh noise at
every step except the last. ``dpmpp_2m`` (DPM-Solver++ 2M) reaches a similar
result in fewer steps.

Randomness comes from one ``torch.Generator`` on the CPU, drawn in a fixed order
(starting noise, then one draw per noisy step) so a seed reproduces a result on
any device; ``reference_noise`` builds the same draws for other samplers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from diffusers import DDIMScheduler, DPMSolverMultistepScheduler

from .constants import LATENT_CHANNELS, NUM_TRAIN_TIMESTEPS
from .denoiser import Conditioning, SyncDenoiser

SCHEDULERS = ("ddim", "dpmpp_2m")

#: Called after every step with (step index, total steps, latents [B,N,4,h,w], predicted x0).
StepCallback = Callable[[int, int, torch.Tensor, torch.Tensor], None]


def make_scheduler(name: str, betas: torch.Tensor):
    """A diffusers scheduler on the model's own beta schedule."""
    common = dict(
        num_train_timesteps=NUM_TRAIN_TIMESTEPS,
        trained_betas=betas.detach().float().cpu().numpy(),
        prediction_type="epsilon",
        timestep_spacing="leading",
        steps_offset=1,
    )
    if name == "ddim":
        return DDIMScheduler(clip_sample=False, set_alpha_to_one=False, **common)
    if name == "dpmpp_2m":
        return DPMSolverMultistepScheduler(algorithm_type="dpmsolver++", solver_order=2, **common)
    raise ValueError(f"unknown scheduler {name!r}; choose one of {', '.join(SCHEDULERS)}")


def ddim_timesteps(steps: int, betas: torch.Tensor) -> torch.Tensor:
    """DDIM timesteps, noisiest first (the reference's list, reversed)."""
    scheduler = make_scheduler("ddim", betas)
    scheduler.set_timesteps(steps)
    return scheduler.timesteps.clone()


def latent_shape(cond: Conditioning, view_count: int) -> tuple[int, ...]:
    h, w = cond.input_latent.shape[-2:]
    return (cond.batch_size, view_count, LATENT_CHANNELS, h, w)


def reference_noise(shape: tuple[int, ...], generator: torch.Generator) -> Iterator[torch.Tensor]:
    """Endless CPU float32 N(0, 1) draws of ``shape``: the first is the starting noise,
    each next one the fresh noise of one step."""
    while True:
        yield torch.randn(shape, generator=generator, dtype=torch.float32)


def _check_steps(steps: int) -> None:
    if not isinstance(steps, int) or isinstance(steps, bool) or not 1 <= steps <= NUM_TRAIN_TIMESTEPS:
        raise ValueError(f"steps must be an integer in 1..{NUM_TRAIN_TIMESTEPS}, got {steps!r}")


@torch.inference_mode()
def sample(
    denoiser: SyncDenoiser,
    cond: Conditioning,
    steps: int = 50,
    cfg_scale: float = 2.0,
    eta: float = 1.0,
    scheduler: str = "ddim",
    generator: torch.Generator | None = None,
    x_T: torch.Tensor | None = None,
    step_noise: torch.Tensor | None = None,
    batch_view_num: int | None = None,
    callback: StepCallback | None = None,
) -> torch.Tensor:
    """Sample B x 16 view latents [B, N, 4, h, w] (scaled by 0.18215, like the input latent).

    ``x_T`` / ``step_noise`` ([S, B, N, 4, h, w], row i used at step i) override the
    draws from ``generator``; ``eta`` applies to DDIM only.
    """
    _check_steps(steps)
    if eta < 0:
        raise ValueError(f"eta must be >= 0, got {eta}")
    model = denoiser.model
    sched = make_scheduler(scheduler, model.betas)
    sched.set_timesteps(steps)
    shape = latent_shape(cond, denoiser.view_count)
    draws = reference_noise(shape, generator if generator is not None else torch.Generator())
    device = model.device
    x = (x_T if x_T is not None else next(draws)).to(device=device, dtype=torch.float32)
    if tuple(x.shape) != shape:
        raise ValueError(f"x_T must have shape {shape}, got {tuple(x.shape)}")

    timesteps = sched.timesteps
    for i, t in enumerate(timesteps):
        t_batch = torch.full((shape[0],), int(t), dtype=torch.long, device=device)
        eps = denoiser(x, t_batch, cond, cfg_scale, batch_view_num).float()
        if scheduler == "ddim":
            noise = None
            if eta > 0:
                last = i == len(timesteps) - 1
                if last:
                    noise = torch.zeros_like(x)
                elif step_noise is not None:
                    noise = step_noise[i].to(device=device, dtype=torch.float32)
                else:
                    noise = next(draws).to(device)
            out = sched.step(eps, t, x, eta=eta, variance_noise=noise)
        else:
            out = sched.step(eps, t, x)
        x = out.prev_sample
        if callback is not None:
            x0 = getattr(out, "pred_original_sample", None)
            callback(i, len(timesteps), x, x0 if x0 is not None else x)
    return x


@torch.inference_mode()
def ddim_step(denoiser: SyncDenoiser, x: torch.Tensor, timestep: int, steps: int, cond: Conditioning,
              cfg_scale: float, eta: float, noise: torch.Tensor | None = None) -> torch.Tensor:
    """One DDIM update of ``x`` [B, N, 4, h, w] at ``timestep`` of a ``steps``-step schedule."""
    _check_steps(steps)
    sched = make_scheduler("ddim", denoiser.model.betas)
    sched.set_timesteps(steps)
    device = denoiser.model.device
    x = x.to(device=device, dtype=torch.float32)
    t_batch = torch.full((x.shape[0],), int(timestep), dtype=torch.long, device=device)
    eps = denoiser(x, t_batch, cond, cfg_scale).float()
    if eta > 0 and noise is None:
        raise ValueError("a DDIM step with eta > 0 needs its noise")
    variance_noise = noise.to(device=device, dtype=torch.float32) if eta > 0 else None
    return sched.step(eps, int(timestep), x, eta=eta, variance_noise=variance_noise).prev_sample
