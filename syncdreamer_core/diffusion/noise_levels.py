"""The model's 1000 noise levels in the form k-diffusion-style hosts read a "model sampling"
object (ComfyUI's discrete epsilon schedule). The denoiser (``denoiser.py``) and its sigma-space
form (``sigma_denoiser.py``) both read them here."""

from __future__ import annotations

import torch

from .schedule import sigmas_from_alphas_cumprod


class DiscreteSigmas(torch.nn.Module):
    """The model's 1000 noise levels, in the interface k-diffusion-style hosts read from
    a "model sampling" object (ComfyUI's discrete epsilon schedule): ``sigmas``,
    ``sigma_min/max``, ``timestep``/``sigma``/``percent_to_sigma`` and the input/output
    scalings. Timesteps are the nearest integer step, as the network was trained."""

    sigma_data = 1.0

    def __init__(self, alphas_cumprod: torch.Tensor):
        super().__init__()
        sigmas = sigmas_from_alphas_cumprod(alphas_cumprod.detach().float().cpu())
        self.register_buffer("sigmas", sigmas)
        self.register_buffer("log_sigmas", sigmas.log())
        self._copies: dict[torch.device, torch.Tensor] = {}

    @property
    def sigma_min(self) -> torch.Tensor:
        return self.sigmas[0]

    @property
    def sigma_max(self) -> torch.Tensor:
        return self.sigmas[-1]

    def log_sigmas_on(self, device: torch.device) -> torch.Tensor:
        """The table on ``device`` (copied once): a step never moves sigma to the host."""
        device = torch.device(device)
        if self.log_sigmas.device == device:
            return self.log_sigmas
        cached = self._copies.get(device)
        if cached is None:
            cached = self._copies[device] = self.log_sigmas.to(device)
        return cached

    def sigma_to_t(self, sigma: torch.Tensor) -> torch.Tensor:
        table = self.log_sigmas_on(sigma.device)
        distances = sigma.detach().float().log().reshape(-1, 1) - table[None]
        return distances.abs().argmin(dim=1).reshape(sigma.shape)

    def t_to_sigma(self, t: torch.Tensor) -> torch.Tensor:
        return self.sigmas[t.long().to(self.sigmas.device)]

    # -- the host-facing names ---------------------------------------------------------
    def timestep(self, sigma: torch.Tensor) -> torch.Tensor:
        return self.sigma_to_t(sigma)

    def sigma(self, timestep: torch.Tensor) -> torch.Tensor:
        t = timestep.float().clamp(0, len(self.sigmas) - 1).to(self.log_sigmas.device)
        low, high = t.floor().long(), t.ceil().long()
        weight = t.frac()
        log_sigma = (1 - weight) * self.log_sigmas[low] + weight * self.log_sigmas[high]
        return log_sigma.exp().to(timestep.device)

    def percent_to_sigma(self, percent: float) -> float:
        if percent <= 0.0:
            return 999999999.9
        if percent >= 1.0:
            return 0.0
        return float(self.sigma(torch.tensor((1.0 - percent) * 999.0)))

    def calculate_input(self, sigma: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return noise / (_expand(sigma, noise) ** 2 + self.sigma_data**2) ** 0.5

    def calculate_denoised(self, sigma, model_output, model_input):
        return model_input - model_output * _expand(sigma, model_output)

    def noise_scaling(self, sigma, noise, latent_image, max_denoise=False):
        """Noise at level ``sigma`` added to ``latent_image``. SyncDreamer always starts from
        pure noise in the variance-preserving sense (x_T ~ N(0, 1) at any first timestep),
        so an empty latent gets ``noise * sqrt(1 + sigma^2)``, not just the top level."""
        sigma = _expand(sigma, noise)
        if max_denoise or latent_image is None or not torch.count_nonzero(latent_image):
            scaled = noise * (1.0 + sigma**2) ** 0.5
        else:
            scaled = noise * sigma
        return scaled + (latent_image if latent_image is not None else 0)

    def inverse_noise_scaling(self, sigma, latent):
        return latent


def _expand(sigma: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    sigma = torch.as_tensor(sigma, device=like.device, dtype=like.dtype)
    return sigma.reshape(sigma.shape[:1] + (1,) * (like.ndim - 1)) if sigma.ndim else sigma
