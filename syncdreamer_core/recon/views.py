"""The 16 generated views as reconstruction input: validation, colours and
foreground masks without a learned matting model.

SyncDreamer renders objects on white, so the background is the near-white region
connected to the image border (flood fill), cleaned with morphology. RGBA views
(e.g. ground-truth renders) use their alpha instead. A user mask overrides both.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from ..background import (
    CONNECTIVITY,
    VIEW_BORDER_WHITE,
    VIEW_WHITE_TOLERANCE,
    border_background,
    border_white_share,
    no_object_message,
    plain_colour,
)
from ..constants import VIEW_COUNT

#: A pixel farther than this from white (max over channels, 0..255) is object (see ``background``).
DEFAULT_WHITE_TOLERANCE = VIEW_WHITE_TOLERANCE
#: Share of the border that must be white for a view without alpha to have a background.
MIN_BORDER_WHITE = VIEW_BORDER_WHITE
#: A view whose mask covers less than this share of the image is "empty".
MIN_COVERAGE = 0.002
MAX_COVERAGE = 0.97


class ReconstructionInputError(ValueError):
    """Views or masks that cannot be reconstructed, with what was expected."""


@dataclass
class ViewSet:
    """``colors`` [16, H, W, 3] float in [0, 1] (object over white), ``masks`` [16, H, W] bool."""

    colors: np.ndarray
    masks: np.ndarray
    #: Views with no object (all white, or an empty mask given).
    blank: tuple[int, ...] = ()
    #: The masks were given (not found on white or in alpha).
    masks_given: bool = False

    @property
    def size(self) -> int:
        return self.colors.shape[1]

    def check_carvable(self, vote_tolerance: int, setting: str = "the carving can leave out (vote_tolerance)") -> None:
        """A blank view carves the whole object away; the vote leaves out at most
        ``vote_tolerance`` views, so more blank views than that leave nothing to mesh."""
        if len(self.blank) <= vote_tolerance:
            return
        if self.masks_given:
            raise ReconstructionInputError(
                f"the masks given for views {list(self.blank)} are empty (0 everywhere), more than the {vote_tolerance} "
                f"{setting}: each mask must mark the object in its view")
        raise ReconstructionInputError(
            f"views {list(self.blank)} are blank (all white, no object), more than the {vote_tolerance} {setting}: "
            "regenerate with another seed, or pick another candidate")


def as_float_views(views: np.ndarray) -> np.ndarray:
    """uint8 or float views in [0, 1] -> float32; NaN, infinite or 0..255 float values are refused."""
    views = np.asarray(views)
    if views.dtype == np.uint8:
        return views.astype(np.float32) / 255.0
    if not np.issubdtype(views.dtype, np.floating):
        raise ReconstructionInputError(f"views must be uint8 or float images, got dtype {views.dtype}")
    finite = np.isfinite(views).reshape(len(views), -1).all(1)
    if not finite.all():
        raise ReconstructionInputError(
            f"views {np.nonzero(~finite)[0].tolist()} contain NaN or infinite pixels (a failed generation or "
            "decode?): regenerate them")
    if views.min() < -0.01 or views.max() > 1.01:
        raise ReconstructionInputError(
            f"float views must be in 0..1, got {float(views.min()):g}..{float(views.max()):g}"
            + (" (0..255 values: divide by 255)" if views.max() > 1.5 else ""))
    return np.clip(views.astype(np.float32), 0.0, 1.0)


def check_views(views: np.ndarray, view_count: int = VIEW_COUNT) -> np.ndarray:
    views = np.asarray(views)
    if views.ndim != 4 or views.shape[-1] not in (3, 4):
        raise ReconstructionInputError(
            f"expected {view_count} views as [N, H, W, 3|4] images, got an array of shape {views.shape}")
    if views.shape[0] != view_count:
        raise ReconstructionInputError(
            f"reconstruction needs exactly {view_count} views (one per SyncDreamer camera, azimuth 22.5*i); "
            f"got {views.shape[0]}")
    if views.shape[1] != views.shape[2] or views.shape[1] < 32:
        raise ReconstructionInputError(
            f"views must be square and at least 32 pixels (SyncDreamer's are 256x256); got "
            f"{views.shape[2]}x{views.shape[1]}")
    return views


def white_background_masks(colors: np.ndarray, tolerance: float = DEFAULT_WHITE_TOLERANCE) -> np.ndarray:
    """[N, H, W, 3] float -> [N, H, W] bool foreground: not the white background, cleaned
    by an opening, a closing and hole filling."""
    masks = []
    for image in colors:
        foreground = ~border_background(image, tolerance)
        foreground = ndimage.binary_opening(foreground, CONNECTIVITY, iterations=1)
        foreground = ndimage.binary_fill_holes(ndimage.binary_closing(foreground, CONNECTIVITY, iterations=2))
        masks.append(foreground)
    return np.stack(masks)


def prepare_views(views: np.ndarray, masks: np.ndarray | None = None,
                  white_tolerance: float = DEFAULT_WHITE_TOLERANCE) -> ViewSet:
    """Colours on white and foreground masks of 16 views.

    views: [16, H, W, 3] on white, or [16, H, W, 4] with alpha as the mask.
    masks: optional [16, H, W] foreground masks (bool or float > 0.5) overriding both.
    """
    views = check_views(views)
    data = as_float_views(views)
    if data.shape[-1] == 4:
        alpha = data[..., 3:]
        colors = data[..., :3] * alpha + (1.0 - alpha)
        derived = alpha[..., 0] > 0.5
    else:
        colors = data
        derived = None
    from_white = masks is None and derived is None
    given = masks is not None
    if masks is not None:
        masks = np.asarray(masks)
        if masks.shape != views.shape[:3]:
            raise ReconstructionInputError(f"masks must be [16, H, W] like the views {views.shape[:3]}, got {masks.shape}")
        masks = masks > 0.5 if masks.dtype != bool else masks
    elif derived is not None:
        masks = derived
    else:
        masks = white_background_masks(colors, white_tolerance)
    coverage = masks.reshape(len(masks), -1).mean(1)
    empty = [i for i, c in enumerate(coverage) if c < MIN_COVERAGE]
    full = [i for i, c in enumerate(coverage) if c > MAX_COVERAGE]
    if from_white:
        # Without alpha, a view whose border is not white has no background to find.
        full = sorted(set(full) | {i for i, image in enumerate(colors)
                                   if border_white_share(image, white_tolerance) < MIN_BORDER_WHITE})
    if len(empty) > len(masks) // 2:
        if given:
            raise ReconstructionInputError(f"the masks given for views {empty} are empty (0 everywhere): each mask must "
                                           "mark the object in its view")
        plain = {plain_colour(colors[i]) for i in empty}
        if None not in plain:
            if len(plain) == 1:
                raise ReconstructionInputError(no_object_message(plain.pop(), f"views {empty}", plural=True))
            raise ReconstructionInputError(f"no object: views {empty} are each one plain colour")
        raise ReconstructionInputError(
            f"no object found in views {empty}: they are white but for specks. Reconstruction needs SyncDreamer's "
            "views of an object on a white background")
    if len(full) > len(masks) // 2:
        if given:
            raise ReconstructionInputError(
                f"the masks given for views {full} cover the whole frame: each mask must mark only the object "
                "(1 on the object, 0 on the background); an inverted mask is 1 on the background")
        raise ReconstructionInputError(
            f"views {full} are object everywhere (no white background found): pass foreground masks, or "
            "give views with the object on white")
    return ViewSet(colors.astype(np.float32), masks, tuple(empty), given)


def sample_view_maps(maps: torch.Tensor, pixels: torch.Tensor, padding: str = "border") -> torch.Tensor:
    """Bilinear samples of per-view maps [N, C, H, W] at pixel coordinates [N, P, 2]
    (pixel i spans [i, i + 1)) -> [N, P, C]."""
    size = maps.shape[-1]
    grid = (pixels / size * 2 - 1)[:, :, None, :]
    values = F.grid_sample(maps, grid.to(maps.dtype), mode="bilinear", padding_mode=padding, align_corners=False)
    return values[..., 0].permute(0, 2, 1)
