"""The random numbers of a run, one stream per instance.

Instance ``n`` of a run with seed ``s`` (candidate ``k`` of input image ``i`` is instance
``i * candidates + k``) draws everything from seeds derived from ``s + n``: its starting
noise and every step's fresh noise from one stream, its sample of the VAE posterior
from another. So an instance never depends on what else ran beside it: candidate 2 of
seed 6033 is exactly the single run with seed 6035.
"""

from __future__ import annotations

import hashlib

import torch

from ..defaults import MAX_SEED


def check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise ValueError(f"seed must be an integer in 0..2**64-1, got {seed!r}")
    return seed


def instance_seed(seed: int, index: int) -> int:
    """The seed of instance ``index`` of a run seeded with ``seed``."""
    return (check_seed(seed) + index) % (MAX_SEED + 1)


def derived_seed(seed: int, purpose: str) -> int:
    """A seed for another use of ``seed`` (e.g. "vae-posterior"), independent of its stream."""
    digest = hashlib.sha256(f"{seed}:{purpose}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


class NoiseStream:
    """Standard normal draws of ``shape`` (float32, made on the CPU so a seed gives the
    same numbers on every device). Called like a k-diffusion noise sampler."""

    def __init__(self, seed: int, shape: tuple[int, ...]):
        self.generator = torch.Generator().manual_seed(seed)
        self.shape = tuple(shape)

    def __call__(self, *_sigmas) -> torch.Tensor:
        return torch.randn(self.shape, generator=self.generator, dtype=torch.float32)


def posterior_noise(seed: int, shape: tuple[int, ...]) -> torch.Tensor:
    """The noise of the VAE posterior sample of the instance seeded with ``seed``."""
    return NoiseStream(derived_seed(seed, "vae-posterior"), shape)()
