"""How close fewer steps get to the reference's 50-step DDIM, on a random small model.

    python bench/bench_steps.py                       # core samplers only
    COMFYUI_ROOT=/path/to/ComfyUI /path/to/ComfyUI/venv/python bench/bench_steps.py

All runs start from the same x_T and conditioning. The reference point is DDIM with 50
steps and eta 0 (the deterministic sampler that the stochastic eta=1 default
approximates in distribution); each other run prints its relative L2 distance to it
in the final latents. With ``COMFYUI_ROOT`` set (and run with an interpreter that can
import that ComfyUI), DPM++ 2M also runs through ComfyUI's own sampler function and
sigma schedules, driven by the pack's sigma-space adapter as the SyncDreamer KSampler
drives them. Weights are random, so this is a first signal about solver error, not
about image quality.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_sampler import build_model  # noqa: E402

from syncdreamer_core.conditioning import Conditioning  # noqa: E402
from syncdreamer_core.diffusion.denoiser import SyncDenoiser  # noqa: E402
from syncdreamer_core.diffusion.noise import NoiseStream, instance_seed  # noqa: E402
from syncdreamer_core.diffusion.noise_levels import DiscreteSigmas  # noqa: E402
from syncdreamer_core.diffusion.sampling import sample  # noqa: E402
from syncdreamer_core.diffusion.sigma_denoiser import SigmaDenoiser  # noqa: E402


def import_comfy_samplers():
    """ComfyUI's sampler module from ``COMFYUI_ROOT``, or None."""
    root = os.environ.get("COMFYUI_ROOT")
    if not root:
        return None
    sys.path.insert(0, root)
    import comfy.cli_args

    comfy.cli_args.args.cpu = True
    import comfy.k_diffusion.sampling
    import comfy.samplers

    return comfy


def comfy_dpmpp_2m(comfy, denoiser: SyncDenoiser, cond: Conditioning, x_T: torch.Tensor, steps: int,
                   scheduler: str, cfg: float) -> torch.Tensor:
    sigma_model = SigmaDenoiser(denoiser, cond, cfg)
    schedule = DiscreteSigmas(denoiser.model.alphas_cumprod)
    sigmas = comfy.samplers.calculate_sigmas(schedule, scheduler, steps).float()
    x = x_T.reshape(-1, *x_T.shape[2:])
    x = schedule.noise_scaling(sigmas[0], x, torch.zeros_like(x))
    out = comfy.k_diffusion.sampling.sample_dpmpp_2m(sigma_model, x, sigmas, disable=True)
    return out.reshape(x_T.shape)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=("small", "tiny"), default="small")
    parser.add_argument("--cfg", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, nargs="+", default=[20])
    args = parser.parse_args()

    comfy = import_comfy_samplers()
    model, _ = build_model(args.size, "fp32", "cpu")
    denoiser = SyncDenoiser(model, 16)
    g = torch.Generator().manual_seed(args.seed)
    cond = Conditioning(torch.randn(1, 1, 768, generator=g), torch.randn(1, 4, 32, 32, generator=g),
                        torch.tensor([0.5]))
    # Every run of one seed starts from the same x_T: the first draw of instance 0's stream.
    x_T = NoiseStream(instance_seed(args.seed, 0), (16, 4, 32, 32))()[None]

    def run(label: str, fn, steps: int, reference=None):
        started = time.perf_counter()
        latents = fn().float()
        row = {"run": label, "steps": steps, "seconds": round(time.perf_counter() - started, 1)}
        if reference is not None:
            row["rel_l2_to_ddim50"] = round(float((latents - reference).norm() / reference.norm()), 4)
        print(json.dumps(row), flush=True)
        return latents

    reference = run("ddim eta0 (reference timesteps)",
                    lambda: sample(denoiser, cond, 50, args.cfg, eta=0.0, seed=args.seed), 50)
    for steps in args.steps:
        run("ddim eta0", lambda steps=steps: sample(denoiser, cond, steps, args.cfg, eta=0.0, seed=args.seed),
            steps, reference)
        run("dpmpp_2m (reference timesteps)", lambda steps=steps: sample(
            denoiser, cond, steps, args.cfg, sampler="dpmpp_2m", seed=args.seed), steps, reference)
        if comfy is None:
            continue
        for scheduler in ("normal", "karras", "ddim_uniform"):
            run(f"dpmpp_2m + {scheduler} (ComfyUI KSampler)",
                lambda steps=steps, scheduler=scheduler: comfy_dpmpp_2m(
                    comfy, denoiser, cond, x_T, steps, scheduler, args.cfg),
                steps, reference)
    if comfy is None:
        print(json.dumps({"note": "set COMFYUI_ROOT to run DPM++ 2M through ComfyUI's samplers"}))


if __name__ == "__main__":
    main()
