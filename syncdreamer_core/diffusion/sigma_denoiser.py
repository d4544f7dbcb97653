"""The synchronized denoiser in the form k-diffusion-style samplers call it.

k-diffusion samplers (ours in ``ddim.py``/``dpm_solver.py``, and ComfyUI's) work on the
variance-exploding view of the same process: ``x = x_vp / sqrt(alpha_bar)`` at
noise level ``sigma = sqrt((1 - alpha_bar) / alpha_bar)``, and call
``model(x, sigma) -> denoised``. ``SigmaDenoiser`` is that callable.

Latent batches are instance-major: index ``instance * 16 + view``; every call
must contain all views of each instance it holds.
"""

from __future__ import annotations

import torch

from ..conditioning import Conditioning
from .denoiser import SyncDenoiser


def views_to_instances(x: torch.Tensor, view_count: int) -> torch.Tensor:
    """[B*N, C, h, w] instance-major batch -> [B, N, C, h, w], with a clear error
    when the batch does not hold whole instances."""
    if x.ndim == 5:
        return x
    if x.ndim != 4 or x.shape[0] % view_count:
        raise ValueError(
            f"SyncDreamer latents must come as whole instances of {view_count} views "
            f"([B*{view_count}, 4, h, w]); got a batch of shape {tuple(x.shape)}"
        )
    return x.reshape(x.shape[0] // view_count, view_count, *x.shape[1:])


def per_instance_sigma(sigma: torch.Tensor, instances: int, view_count: int) -> torch.Tensor:
    """Reduce a scalar, per-view [B*N] or per-instance [B] sigma to [B]."""
    sigma = sigma.reshape(-1)
    if sigma.numel() == 1:
        return sigma.expand(instances)
    if sigma.numel() == instances * view_count:
        grouped = sigma.reshape(instances, view_count)
        # Checked where it is free; on an accelerator the check would stall every step, and
        # every sampler gives all views of an instance one level.
        if sigma.device.type == "cpu" and not torch.all(grouped == grouped[:, :1]):
            raise ValueError("all views of an instance must share one noise level")
        return grouped[:, 0]
    if sigma.numel() == instances:
        return sigma
    raise ValueError(f"sigma of shape {tuple(sigma.shape)} does not match {instances} instances")


class SigmaDenoiser:
    """``denoised = f(x, sigma)`` for x [B*N, 4, h, w] or [B, N, 4, h, w] (VE scale)."""

    def __init__(self, denoiser: SyncDenoiser, cond: Conditioning, cfg_scale: float = 2.0,
                 batch_view_num: int | None = None):
        self.denoiser = denoiser
        self.cond = cond
        self.cfg_scale = cfg_scale
        self.batch_view_num = batch_view_num
        self.schedule = denoiser.schedule

    def predict_eps(self, x: torch.Tensor, sigma: torch.Tensor, both: bool = False):
        """Noise prediction for VE-scaled ``x``; same layout as ``x`` (with ``both``: the
        conditional and unconditional predictions)."""
        N = self.denoiser.view_count
        x5 = views_to_instances(x, N)
        B = x5.shape[0]
        if B != self.cond.batch_size:
            raise ValueError(f"got {B} instances but conditioning for {self.cond.batch_size}")
        sigma_b = per_instance_sigma(sigma, B, N).to(torch.float32)
        scale_in = (sigma_b.to(x.device) ** 2 + 1) ** -0.5
        x_vp = x5.float() * scale_in.view(B, 1, 1, 1, 1)
        timesteps = self.schedule.sigma_to_t(sigma_b).to(x.device)
        eps = self.denoiser(x_vp, timesteps, self.cond, self.cfg_scale, self.batch_view_num, both=both)
        if both:
            return tuple(e.to(x.dtype).reshape(x.shape) for e in eps)
        return eps.to(x.dtype).reshape(x.shape)

    def _denoised(self, x: torch.Tensor, sigma: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        N = self.denoiser.view_count
        sigma_b = per_instance_sigma(sigma.to(x.device), views_to_instances(x, N).shape[0], N)
        sigma_views = sigma_b.repeat_interleave(N) if x.ndim == 4 else sigma_b
        return x - eps * sigma_views.view(-1, *([1] * (x.ndim - 1))).to(x.dtype)

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        return self._denoised(x, sigma, self.predict_eps(x, sigma))

    def denoise_both(self, x: torch.Tensor, sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(conditional, unconditional) denoised predictions, unguided, for hosts whose
        samplers combine them (ComfyUI's CFG++ family)."""
        eps_cond, eps_uncond = self.predict_eps(x, sigma, both=True)
        return self._denoised(x, sigma, eps_cond), self._denoised(x, sigma, eps_uncond)
