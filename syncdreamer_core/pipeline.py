"""Image -> 16 views: prepare, encode, sample, decode (the reference ``generate.py``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from . import defaults
from .conditioning import Conditioning, elevation_radians, encode_conditioning
from .diffusion.denoiser import SyncDenoiser
from .diffusion.noise import check_seed
from .diffusion.sampling import StepCallback, sample
from .preprocess import PreparedInput, prepare_input
from .weights.checkpoint import LoadedCheckpoint, load_checkpoint

#: Views decoded by the VAE at once.
DECODE_CHUNK = 8


@dataclass
class GenerationResult:
    """``latents`` [B, 16, 4, 32, 32] (scaled by 0.18215); ``views`` [B, 16, 256, 256, 3] in [0, 1]."""

    latents: torch.Tensor
    views: torch.Tensor
    prepared: PreparedInput
    elevation_deg: float


class SyncDreamerPipeline:
    def __init__(self, loaded: LoadedCheckpoint, batch_view_num: int = defaults.BATCH_VIEW_NUM):
        """``batch_view_num`` 0: the largest whose step fits in the device's free memory. A
        run that cannot fit stops here (``memory.MemoryShortage``), before any work."""
        from .memory import views_that_fit

        if loaded.vae is None or loaded.clip is None:
            raise ValueError("the pipeline needs a checkpoint loaded with its VAE and CLIP encoder")
        self.loaded = loaded
        if isinstance(batch_view_num, bool) or not isinstance(batch_view_num, int) or not 0 <= batch_view_num <= 16:
            raise ValueError(f"batch_view_num must be 0 (auto) or 1..16, got {batch_view_num!r}")
        self.denoiser = SyncDenoiser(loaded.model, views_that_fit(loaded.model, batch_view_num))

    @classmethod
    def from_checkpoint(cls, path, dtype="fp32", device="cpu", num_heads: int | None = None,
                        batch_view_num: int = defaults.BATCH_VIEW_NUM, weight_dtype=None) -> SyncDreamerPipeline:
        loaded = load_checkpoint(path, dtype=dtype, device=device, num_heads=num_heads, weight_dtype=weight_dtype)
        return cls(loaded, batch_view_num)

    @property
    def model(self):
        return self.loaded.model

    def cpu_wait(self, steps: int = defaults.STEPS, sample_count: int = 1, cfg_scale: float = defaults.CFG):
        """How long sampling will take when the network runs on a CPU (``wait.WaitEstimate``),
        else None."""
        from .diffusion.schedule import steps_run
        from .wait import cpu_wait

        return cpu_wait(self.model, self.denoiser.batch_view_num, cfg_scale, steps_run(steps), sample_count)

    def condition(self, pixels: torch.Tensor, elevation_deg, sample_count: int = 1,
                  seed: int = defaults.SEED) -> Conditioning:
        """pixels [I, 3, 256, 256] in [-1, 1] -> conditioning for ``sample_count`` instances per image."""
        return encode_conditioning(self.loaded.encoders(), pixels, elevation_deg, seed, sample_count)

    @torch.inference_mode()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """[B, N, 4, h, w] -> views [B, N, 8h, 8w, 3] in [0, 1] on the CPU."""
        from .weights.encoders import decode_latents

        flat = latents.reshape(-1, *latents.shape[2:])
        images = [decode_latents(self.loaded.vae, flat[i:i + DECODE_CHUNK]).cpu() for i in range(0, len(flat), DECODE_CHUNK)]
        images = (torch.cat(images) + 1) / 2
        return images.permute(0, 2, 3, 1).reshape(*latents.shape[:2], *images.shape[2:], 3)

    def __call__(self, image, elevation_deg: float = defaults.ELEVATION_DEG, crop_size: int = defaults.CROP_SIZE,
                 mask: np.ndarray | None = None, sample_count: int = 1, steps: int = defaults.STEPS,
                 cfg_scale: float = defaults.CFG, eta: float = defaults.ETA, seed: int = defaults.SEED,
                 sampler: str = "ddim", callback: StepCallback | None = None) -> GenerationResult:
        """Candidate k of the result is the single run with ``seed + k``."""
        check_generation(elevation_deg, sample_count, seed)
        return self.generate(prepare_input(image, mask, crop_size), elevation_deg, sample_count, steps, cfg_scale,
                             eta, seed, sampler, callback)

    def generate(self, prepared: PreparedInput, elevation_deg: float = defaults.ELEVATION_DEG, sample_count: int = 1,
                 steps: int = defaults.STEPS, cfg_scale: float = defaults.CFG, eta: float = defaults.ETA,
                 seed: int = defaults.SEED, sampler: str = "ddim",
                 callback: StepCallback | None = None) -> GenerationResult:
        """The views of an input already prepared (``prepare_input``): what ``__call__`` does
        after preparing, so both give the same numbers."""
        check_generation(elevation_deg, sample_count, seed)
        pixels = torch.from_numpy(prepared.model_input()).permute(2, 0, 1)[None]
        cond = self.condition(pixels, elevation_deg, sample_count, seed)
        latents = sample(self.denoiser, cond, steps, cfg_scale, eta, sampler, seed, callback)
        return GenerationResult(latents.cpu(), self.decode(latents), prepared, float(elevation_deg))


def check_generation(elevation_deg, sample_count, seed) -> None:
    if isinstance(sample_count, bool) or not isinstance(sample_count, int) or sample_count < 1:
        raise ValueError(f"sample_count must be a positive integer, got {sample_count!r}")
    elevation_radians(elevation_deg)
    check_seed(seed)
