"""The one rule for a white background: near-white pixels connected to the image border.

Two callers use it with different thresholds, for different images:
- input preparation (``preprocess``) sees any user image; it accepts a background only
  when it is clean white (every channel >= 245) and makes up most of the border (90 %),
  and otherwise asks for a mask, rather than guess;
- reconstruction (``recon.views``) sees SyncDreamer's own views, whose VAE-decoded white
  wobbles by up to ~18 levels and whose objects may touch the border, so it takes a
  looser tolerance and needs only half the border white.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

#: 4-connectivity: a diagonal gap between two white regions keeps them apart.
CONNECTIVITY = ndimage.generate_binary_structure(2, 1)


def white_distance(rgb: np.ndarray) -> np.ndarray:
    """How far each pixel is from white, in 0..255 levels (max over channels). uint8
    images give exact integers; float images in [0, 1] give (1 - value) * 255."""
    rgb = np.asarray(rgb)
    if rgb.dtype == np.uint8:
        return 255 - rgb.min(axis=-1).astype(np.int16)
    return (1.0 - rgb).max(-1) * 255.0


def border_values(array: np.ndarray) -> np.ndarray:
    return np.concatenate([array[0], array[-1], array[:, 0], array[:, -1]])


def border_white_share(rgb: np.ndarray, tolerance: float) -> float:
    """Share of border pixels within ``tolerance`` levels of white."""
    return float(border_values(white_distance(rgb) <= tolerance).mean())


def border_background(rgb: np.ndarray, tolerance: float) -> np.ndarray:
    """[H, W] bool: pixels within ``tolerance`` of white that connect to the border."""
    white = white_distance(rgb) <= tolerance
    labels, _ = ndimage.label(white, CONNECTIVITY)
    touching = np.unique(border_values(labels))
    return np.isin(labels, touching[touching > 0])
