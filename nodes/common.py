"""Shared bits of the node classes: category, type names, tensor <-> array helpers."""

from __future__ import annotations

import numpy as np
import torch

CATEGORY = "SyncDreamer"
MODEL_FOLDER = "syncdreamer"


class NodeInputError(ValueError):
    """A node input with the wrong shape or value; the message says which and what was expected."""


def image_batch(image: torch.Tensor, name: str = "image", channels: tuple[int, ...] = (3, 4)) -> torch.Tensor:
    if not torch.is_tensor(image) or image.ndim != 4 or image.shape[-1] not in channels:
        shape = tuple(image.shape) if torch.is_tensor(image) else type(image).__name__
        raise NodeInputError(f"{name} must be an IMAGE batch [B, H, W, {'|'.join(map(str, channels))}], got {shape}")
    return image


def to_numpy_image(image: torch.Tensor) -> np.ndarray:
    """One IMAGE [H, W, C] in 0..1 -> float32 array."""
    return image.detach().cpu().float().numpy()


def to_image_tensor(array: np.ndarray) -> torch.Tensor:
    """[H, W, C] or [B, H, W, C] float array in 0..1 -> IMAGE batch."""
    tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
    return tensor[None] if tensor.ndim == 3 else tensor
