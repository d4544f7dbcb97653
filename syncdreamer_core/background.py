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
#: SyncDreamer's own views: a pixel farther than this from white (max over channels, 0..255)
#: is object, and at least this share of a view's border is white.
VIEW_WHITE_TOLERANCE = 18
VIEW_BORDER_WHITE = 0.5


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


def views_without_white_border(views: np.ndarray) -> list[int]:
    """Indices of the views [N, H, W, 3] (float in 0..1 or uint8) whose border is not mostly
    white, as SyncDreamer's always is."""
    return [i for i, view in enumerate(views) if border_white_share(view[..., :3], VIEW_WHITE_TOLERANCE) < VIEW_BORDER_WHITE]


def border_background(rgb: np.ndarray, tolerance: float) -> np.ndarray:
    """[H, W] bool: pixels within ``tolerance`` of white that connect to the border."""
    white = white_distance(rgb) <= tolerance
    labels, _ = ndimage.label(white, CONNECTIVITY)
    touching = np.unique(border_values(labels))
    return np.isin(labels, touching[touching > 0])


#: Levels a plain (one-colour) image may vary by: JPEG noise on a blank canvas.
PLAIN_TOLERANCE = 4


def plain_colour(rgb: np.ndarray) -> str | None:
    """The name of the one colour an image is made of ("white", "black", or its levels),
    or None when it has any content. A plain image holds no object, whatever mask or
    background rule is applied to it."""
    rgb = np.asarray(rgb)
    if not rgb.size:
        return None
    levels = rgb.astype(np.float32) * (255.0 if rgb.dtype != np.uint8 else 1.0)
    low, high = levels.reshape(-1, levels.shape[-1]).min(0), levels.reshape(-1, levels.shape[-1]).max(0)
    if float((high - low).max()) > PLAIN_TOLERANCE:
        return None
    mean = (low + high) / 2
    if mean.min() >= 245:
        return "white"
    if mean.max() <= 10:
        return "black"
    return "RGB " + ", ".join(str(int(round(v))) for v in mean)


def no_object_message(colour: str, what: str = "the image", plural: bool = False) -> str:
    """What every node says about a plain image: the same words wherever it is first seen."""
    verb = "are" if plural else "is"
    if colour in ("white", "black"):
        return f"no object: {what} {verb} plain {colour} (one colour)"
    return f"no object: {what} {verb} one plain colour ({colour})"
