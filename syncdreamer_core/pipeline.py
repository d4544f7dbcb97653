"""Image -> 16 views: prepare, encode, sample, decode (the reference ``generate.py``)."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np
import torch

from .checkpoint import LoadedCheckpoint, load_checkpoint
from .constants import (
    DEFAULT_BATCH_VIEW_NUM,
    DEFAULT_CFG,
    DEFAULT_CROP_SIZE,
    DEFAULT_ETA,
    DEFAULT_SEED,
    DEFAULT_STEPS,
    VAE_SCALE_FACTOR,
)
from .denoiser import Conditioning, SyncDenoiser
from .encoders import clip_image_embedding, decode_latents
from .preprocess import PreparedInput, prepare_input
from .sampling import StepCallback, sample

#: Views decoded by the VAE at once.
DECODE_CHUNK = 8


def elevation_radians(elevation_deg, batch_size: int = 1) -> torch.Tensor:
    """Input elevation in degrees (a number, or one per instance) -> [B] radians."""
    values = elevation_deg if isinstance(elevation_deg, (list, tuple)) else [elevation_deg] * batch_size
    for value in values:
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
            raise TypeError(
                f"elevation must be a finite number of degrees (e.g. 30), got {value!r} "
                f"of type {type(value).__name__}"
            )
        if not -90.0 <= float(value) <= 90.0:
            raise ValueError(f"elevation must be between -90 and 90 degrees, got {value}")
    if len(values) != batch_size:
        raise ValueError(f"got {len(values)} elevations for {batch_size} instances")
    return torch.tensor([math.radians(float(v)) for v in values], dtype=torch.float32)


def input_latent_generator(seed: int) -> torch.Generator:
    """The stream for the VAE posterior sample of the input; kept apart from the
    sampling stream (seeded with ``seed`` itself) so both are reproducible."""
    return torch.Generator().manual_seed((int(seed) + 1) % 2**63)


def sample_posterior(mean: torch.Tensor, std: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    noise = torch.randn(mean.shape, generator=generator, dtype=torch.float32).to(mean.device)
    return mean.float() + std.float() * noise


@dataclass
class GenerationResult:
    """``latents`` [B, 16, 4, 32, 32] (scaled by 0.18215); ``views`` [B, 16, 256, 256, 3] in [0, 1]."""

    latents: torch.Tensor
    views: torch.Tensor
    prepared: PreparedInput
    elevation_deg: float


class SyncDreamerPipeline:
    def __init__(self, loaded: LoadedCheckpoint, batch_view_num: int = DEFAULT_BATCH_VIEW_NUM):
        if loaded.vae is None or loaded.clip is None:
            raise ValueError("the pipeline needs a checkpoint loaded with its VAE and CLIP encoder")
        self.loaded = loaded
        self.denoiser = SyncDenoiser(loaded.model, batch_view_num)

    @classmethod
    def from_checkpoint(cls, path, dtype="fp32", device="cpu", num_heads: int | None = None,
                        batch_view_num: int = DEFAULT_BATCH_VIEW_NUM, weight_dtype=None) -> SyncDreamerPipeline:
        loaded = load_checkpoint(path, dtype=dtype, device=device, num_heads=num_heads, weight_dtype=weight_dtype)
        return cls(loaded, batch_view_num)

    @property
    def model(self):
        return self.loaded.model

    @torch.inference_mode()
    def condition(self, image: torch.Tensor, elevation_deg, sample_count: int = 1, seed: int = DEFAULT_SEED) -> Conditioning:
        """image [1, 3, 256, 256] in [-1, 1] -> conditioning for ``sample_count`` instances,
        each with its own sample of the VAE posterior (as the reference)."""
        vae, clip = self.loaded.vae, self.loaded.clip
        posterior = vae.encode(image.to(device=vae.device, dtype=vae.dtype)).latent_dist
        mean = posterior.mean.expand(sample_count, -1, -1, -1)
        std = posterior.std.expand(sample_count, -1, -1, -1)
        latent = sample_posterior(mean, std, input_latent_generator(seed)) * VAE_SCALE_FACTOR
        clip_embed = clip_image_embedding(clip, image).expand(sample_count, -1, -1)
        return Conditioning(clip_embed, latent, elevation_radians(elevation_deg, sample_count))

    @torch.inference_mode()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """[B, N, 4, h, w] -> views [B, N, 8h, 8w, 3] in [0, 1] on the CPU."""
        flat = latents.reshape(-1, *latents.shape[2:])
        images = [decode_latents(self.loaded.vae, flat[i:i + DECODE_CHUNK]).cpu() for i in range(0, len(flat), DECODE_CHUNK)]
        images = (torch.cat(images) + 1) / 2
        return images.permute(0, 2, 3, 1).reshape(*latents.shape[:2], *images.shape[2:], 3)

    def __call__(self, image, elevation_deg: float = 30.0, crop_size: int = DEFAULT_CROP_SIZE,
                 mask: np.ndarray | None = None, sample_count: int = 1, steps: int = DEFAULT_STEPS,
                 cfg_scale: float = DEFAULT_CFG, eta: float = DEFAULT_ETA, seed: int = DEFAULT_SEED,
                 scheduler: str = "ddim", callback: StepCallback | None = None) -> GenerationResult:
        if not isinstance(sample_count, int) or sample_count < 1:
            raise ValueError(f"sample_count must be a positive integer, got {sample_count!r}")
        elevation_radians(elevation_deg)
        prepared = prepare_input(image, mask, crop_size)
        pixels = torch.from_numpy(prepared.model_input()).permute(2, 0, 1)[None]
        cond = self.condition(pixels, elevation_deg, sample_count, seed)
        latents = sample(self.denoiser, cond, steps, cfg_scale, eta, scheduler,
                         generator=torch.Generator().manual_seed(int(seed)), callback=callback)
        return GenerationResult(latents.cpu(), self.decode(latents), prepared, float(elevation_deg))
