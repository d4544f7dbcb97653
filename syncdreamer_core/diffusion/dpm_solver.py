"""DPM-Solver++(2M) (Lu et al. 2022) as a k-diffusion-style sampler: a second-order
multistep solver of the diffusion ODE that reaches a DDIM-like result in fewer steps."""

from __future__ import annotations

import torch


@torch.inference_mode()
def sample_dpmpp_2m(model, x: torch.Tensor, sigmas: torch.Tensor, extra_args: dict | None = None, callback=None,
                    disable: bool | None = None) -> torch.Tensor:
    """Integrate from ``sigmas[0]`` to ``sigmas[-1]`` (variance-exploding levels).

    In log-SNR time lambda = -log sigma with step h, the first-order update is
    x_next = (sigma_next / sigma) x - expm1(-h) D, and the second order replaces the
    denoised estimate D by (1 + 1/(2r)) D_i - 1/(2r) D_{i-1}, r = h_{i-1} / h_i.
    The step onto sigma = 0 is first order (x becomes D).
    """
    extra_args = extra_args or {}
    s_in = x.new_ones([x.shape[0]])
    previous = None
    h_previous = None
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i].float(), sigmas[i + 1].float()
        denoised = model(x, sigma * s_in, **extra_args)
        if callback is not None:
            callback({"x": x, "i": i, "sigma": sigma, "sigma_hat": sigma, "denoised": denoised})
        if sigma_next == 0:
            x = denoised
            continue
        h = torch.log(sigma) - torch.log(sigma_next)
        estimate = denoised
        if previous is not None:
            r = h_previous / h
            estimate = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * previous
        x = (sigma_next / sigma) * x - torch.expm1(-h) * estimate
        previous, h_previous = denoised, h
    return x
