"""What the input image contributes to sampling, computed in one place for every route
(command line, pipeline, ComfyUI nodes): a sample of the VAE posterior of the input
(times 0.18215, one sample per instance, as the reference), its CLIP ViT-L/14
embedding and the input view's elevation."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Protocol

import torch

from .constants import IMAGE_SIZE, VAE_SCALE_FACTOR
from .diffusion.noise import instance_seed, posterior_noise


class ConditioningError(ValueError):
    """Inputs from which no conditioning can be made, with what was expected."""


@dataclass
class Conditioning:
    """``clip_embed`` [B, 1, 768] CLIP image embedding; ``input_latent`` [B, 4, 32, 32] VAE
    latent already multiplied by 0.18215; ``elevation`` [B] input-view elevation in radians.
    Row ``n`` belongs to instance ``n``."""

    clip_embed: torch.Tensor
    input_latent: torch.Tensor
    elevation: torch.Tensor

    def __post_init__(self):
        if self.clip_embed.ndim == 2:
            self.clip_embed = self.clip_embed[:, None]
        B = self.clip_embed.shape[0]
        if self.input_latent.ndim != 4 or self.input_latent.shape[0] != B:
            raise ValueError(
                f"input_latent must be [B, 4, h, w] with B={B} like clip_embed, got {tuple(self.input_latent.shape)}"
            )
        if not torch.is_tensor(self.elevation) or not self.elevation.is_floating_point():
            raise TypeError(
                "elevation must be a float tensor of radians with one value per instance, "
                f"got {type(self.elevation).__name__}"
                + (f" of dtype {self.elevation.dtype}" if torch.is_tensor(self.elevation) else "")
            )
        if self.elevation.shape != (B,):
            raise ValueError(f"elevation must have shape [{B}] (one per instance), got {tuple(self.elevation.shape)}")
        for name in ("clip_embed", "input_latent", "elevation"):
            if not torch.isfinite(getattr(self, name)).all():
                raise ConditioningError(f"the conditioning's {name} contains NaN or infinite values "
                                        "(check the input image and the encoder weights)")

    @property
    def batch_size(self) -> int:
        return self.clip_embed.shape[0]

    def instance(self, index: int) -> Conditioning:
        """The conditioning of instance ``index`` alone."""
        pick = slice(index, index + 1)
        return Conditioning(self.clip_embed[pick], self.input_latent[pick], self.elevation[pick])


class InputEncoders(Protocol):
    """The two frozen encoders, whichever implementation holds them."""

    def posterior(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """pixels [B, 3, H, W] in [-1, 1] -> mean and std [B, 4, H/8, W/8] of the VAE
        posterior (raw latent scale, float32)."""

    def clip_embedding(self, pixels: torch.Tensor) -> torch.Tensor:
        """pixels [B, 3, H, W] in [-1, 1] -> CLIP image embedding [B, 1, 768] (float32)."""


def posterior_from_moments(moments: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The LDM encoder's output [B, 2C, h, w] (mean and log-variance) -> mean, std, with the
    log-variance clamped to [-30, 20] as LDM's DiagonalGaussianDistribution does."""
    mean, logvar = moments.float().chunk(2, dim=1)
    return mean, torch.exp(0.5 * logvar.clamp(-30.0, 20.0))


def elevation_radians(elevation_deg, batch_size: int = 1) -> torch.Tensor:
    """Input elevation in degrees (a number, or one per instance) -> [B] radians."""
    values = list(elevation_deg) if isinstance(elevation_deg, (list, tuple)) else [elevation_deg] * batch_size
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


def model_pixels(images: torch.Tensor) -> torch.Tensor:
    """Prepared inputs as images [B, H, W, 3] in [0, 1] -> what the encoders read, [B, 3, H, W] in [-1, 1]."""
    return images[..., :3].movedim(-1, 1).float() * 2 - 1


def check_input_pixels(pixels: torch.Tensor) -> torch.Tensor:
    """Prepared inputs [B, 3, 256, 256] in [-1, 1]."""
    if not torch.is_tensor(pixels) or pixels.ndim != 4 or pixels.shape[1] != 3:
        shape = tuple(pixels.shape) if torch.is_tensor(pixels) else type(pixels).__name__
        raise ConditioningError(f"prepared inputs must be [B, 3, {IMAGE_SIZE}, {IMAGE_SIZE}] in [-1, 1], got {shape}")
    if tuple(pixels.shape[2:]) != (IMAGE_SIZE, IMAGE_SIZE):
        raise ConditioningError(f"prepared inputs must be {IMAGE_SIZE}x{IMAGE_SIZE} (the output of input preparation), "
                                f"got {pixels.shape[3]}x{pixels.shape[2]}")
    if not torch.isfinite(pixels).all():
        raise ConditioningError("the prepared input contains NaN or infinite pixels")
    # One memory layout for every route: convolution kernels pick their summation order by it.
    return pixels.float().contiguous()


@torch.inference_mode()
def encode_conditioning(encoders: InputEncoders, pixels: torch.Tensor, elevation_deg, seed: int,
                        candidates: int = 1) -> Conditioning:
    """The conditioning of ``candidates`` instances per input image.

    pixels: [I, 3, 256, 256] in [-1, 1]; elevation_deg: one number, or one per image.
    Instance ``n = i * candidates + k`` (candidate k of image i) gets its own posterior
    sample, drawn from the seed of instance n (see ``diffusion.noise``).
    """
    pixels = check_input_pixels(pixels)
    if isinstance(candidates, bool) or not isinstance(candidates, int) or candidates < 1:
        raise ValueError(f"candidates must be a positive integer, got {candidates!r}")
    images = pixels.shape[0]
    per_image = elevation_radians(elevation_deg, images) if isinstance(elevation_deg, (list, tuple)) else \
        elevation_radians(elevation_deg, 1).expand(images)
    latents, embeds = [], []
    for i in range(images):
        mean, std = encoders.posterior(pixels[i:i + 1])
        embed = encoders.clip_embedding(pixels[i:i + 1]).float().cpu()
        mean, std = mean.float().cpu(), std.float().cpu()
        for k in range(candidates):
            noise = posterior_noise(instance_seed(seed, i * candidates + k), tuple(mean.shape))
            latents.append((mean + std * noise) * VAE_SCALE_FACTOR)
            embeds.append(embed)
    elevation = per_image.repeat_interleave(candidates)
    return Conditioning(torch.cat(embeds), torch.cat(latents), elevation.clone())
