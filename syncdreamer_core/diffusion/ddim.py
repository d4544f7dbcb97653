"""DDIM (Song et al. 2021) as a k-diffusion-style sampler over a denoiser callable.

This is the reference's sampler, written once: ComfyUI drives it as the ``ddim``
SAMPLER and ``diffusion.sampling.sample`` runs it for the command line and the
pipeline.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .noise import NoiseStream

NoiseSampler = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def seed_noise_sampler(seed: int, shape: tuple[int, ...]) -> NoiseSampler:
    """The per-step noise of the instance seeded with ``seed``: its stream after the
    starting noise (which the caller drew first)."""
    stream = NoiseStream(seed, shape)
    stream()
    return stream


@torch.inference_mode()
def sample_ddim(model, x: torch.Tensor, sigmas: torch.Tensor, extra_args: dict | None = None, callback=None,
                disable: bool | None = None, eta: float = 1.0, noise_sampler: NoiseSampler | None = None,
                terminal_sigma: float | None = None) -> torch.Tensor:
    """DDIM(eta) over the noise levels ``sigmas`` (variance-exploding, noisiest first).

    With alpha = 1 / (1 + sigma^2), eq. 12 of the DDIM paper:
    x_prev = sqrt(a_prev) x0 + sqrt(1 - a_prev - s^2) eps + s z,
    s = eta sqrt((1 - a_prev) / (1 - a) (1 - a / a_prev)), and no noise z on the step
    that lands on the end of the schedule (``sigmas`` ends in 0). The reference lands on
    t = 0, not on sigma 0: given ``terminal_sigma`` (the model's smallest level) the last
    step lands there and returns the latent in variance-preserving scale, which is what
    the reference decodes.
    """
    extra_args = extra_args or {}
    if eta > 0 and noise_sampler is None:
        noise_sampler = seed_noise_sampler(int(extra_args.get("seed") or 0), tuple(x.shape))
    s_in = x.new_ones([x.shape[0]])
    ends = (sigmas == 0).tolist()  # read once, not once per step (sigmas may be on the device)
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i].float(), sigmas[i + 1].float()
        denoised = model(x, sigma * s_in, **extra_args)
        if callback is not None:
            callback({"x": x, "i": i, "sigma": sigma, "sigma_hat": sigma, "denoised": denoised})
        final = ends[i + 1]
        lands_on_terminal = final and terminal_sigma is not None
        if lands_on_terminal:
            sigma_next = torch.tensor(terminal_sigma, dtype=torch.float32, device=sigma.device)
        alpha = 1 / (1 + sigma**2)
        alpha_next = 1 / (1 + sigma_next**2)
        eps = (x - denoised) / sigma
        std = eta * ((1 - alpha_next) / (1 - alpha) * (1 - alpha / alpha_next)).clamp(min=0).sqrt()
        x_vp = alpha_next.sqrt() * denoised + (1 - alpha_next - std**2).clamp(min=0).sqrt() * eps
        if eta > 0 and not final:
            x_vp = x_vp + std * noise_sampler(sigma, sigma_next).to(x.device, x.dtype).reshape(x.shape)
        x = x_vp if lands_on_terminal else x_vp / alpha_next.sqrt()
    return x
