"""Input preparation exactly as the reference does it (``ldm/util.py`` prepare_inputs).

- ``crop_size = -1``: pad the whole image to a centred square with a transparent
  margin and resize it to 256 (bicubic).
- ``crop_size = N``: crop to the bounding box of the alpha mask, resize (bicubic) so
  its longer side is N pixels (sides truncated to integers) and paste it centred on
  a transparent 256x256 canvas.
- Composite over white: rgb * a + (1 - a).

Pillow does the cropping and resizing, as in the reference, so the pixels match.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy import ndimage

from .constants import IMAGE_SIZE

#: A pixel whose every channel is at least this bright (0..255) counts as white background.
WHITE_LEVEL = 245
#: Share of border pixels that must be white for a mask-less image to be accepted.
WHITE_BORDER_SHARE = 0.9


class InputImageError(ValueError):
    """An input image that cannot be prepared, with what to do about it."""


@dataclass
class PreparedInput:
    """``image``: [256, 256, 3] float32 in [0, 1] on white; ``mask``: [256, 256] float32
    foreground alpha in [0, 1]."""

    image: np.ndarray
    mask: np.ndarray

    def model_input(self) -> np.ndarray:
        """The image in [-1, 1], as the network sees it."""
        return self.image * 2.0 - 1.0


def to_uint8(array: np.ndarray) -> np.ndarray:
    """Float [0, 1] or uint8 array -> uint8 (rounded)."""
    if array.dtype == np.uint8:
        return array
    return np.clip(np.round(np.asarray(array, dtype=np.float64) * 255.0), 0, 255).astype(np.uint8)


def white_background_mask(rgb: np.ndarray) -> np.ndarray | None:
    """Foreground alpha (uint8) of an image on a near-white background: the white region
    connected to the border is background. None when the border is not mostly white."""
    rgb = to_uint8(rgb)
    white = rgb.min(axis=-1) >= WHITE_LEVEL
    border = np.concatenate([white[0], white[-1], white[:, 0], white[:, -1]])
    if border.mean() < WHITE_BORDER_SHARE:
        return None
    labels, _ = ndimage.label(white)
    border_labels = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    background = np.isin(labels, border_labels[border_labels > 0])
    return np.where(background, 0, 255).astype(np.uint8)


def to_rgba(image: Image.Image | np.ndarray, mask: np.ndarray | None = None) -> Image.Image:
    """Combine an image and an optional foreground mask into an RGBA Pillow image.

    image: Pillow image, or [H, W, 3|4] array (uint8 or float in [0, 1]).
    mask: [H, W] foreground alpha (uint8 or float in [0, 1]); it replaces any alpha.
    Without alpha and without mask, a near-white background is detected.
    """
    if isinstance(image, Image.Image):
        array = np.asarray(image.convert("RGBA") if image.mode in ("RGBA", "LA", "P", "PA") else image.convert("RGB"))
    else:
        array = np.asarray(image)
    if array.ndim != 3 or array.shape[-1] not in (3, 4):
        raise InputImageError(f"the input image must be [H, W, 3] (RGB) or [H, W, 4] (RGBA), got {array.shape}")
    if min(array.shape[:2]) < 8:
        raise InputImageError(f"the input image is too small ({array.shape[1]}x{array.shape[0]} pixels)")
    array = to_uint8(array)
    rgb = array[..., :3]
    if mask is not None:
        mask = np.asarray(mask)
        if mask.shape != rgb.shape[:2]:
            raise InputImageError(f"the mask is {mask.shape[1]}x{mask.shape[0]} but the image is "
                                  f"{rgb.shape[1]}x{rgb.shape[0]}; they must have the same size")
        alpha = to_uint8(mask)
    elif array.shape[-1] == 4:
        alpha = array[..., 3]
    else:
        alpha = white_background_mask(rgb)
        if alpha is None:
            raise InputImageError(
                "the input image has no alpha channel, no mask was given, and its background is not "
                "white: remove the background first (e.g. with a background-removal node) and pass its "
                "mask, or use an RGBA image whose alpha marks the object"
            )
    if not alpha.any():
        raise InputImageError(
            "the object mask is empty (no foreground pixel): check the mask (is it inverted? "
            "LoadImage's MASK is 1 on the background) or the image's alpha channel"
        )
    return Image.fromarray(np.dstack([rgb, alpha]), "RGBA")


def _add_margin(image: Image.Image, size: int) -> Image.Image:
    canvas = Image.new(image.mode, (size, size), 0)
    canvas.paste(image, ((size - image.width) // 2, (size - image.height) // 2))
    return canvas


def prepare_input(image: Image.Image | np.ndarray, mask: np.ndarray | None = None, crop_size: int = -1,
                  image_size: int = IMAGE_SIZE) -> PreparedInput:
    """Centre, scale and whiten an object image for SyncDreamer (see module doc)."""
    if not isinstance(crop_size, (int, np.integer)) or isinstance(crop_size, bool) or not (
        crop_size == -1 or 1 <= crop_size <= image_size
    ):
        raise InputImageError(f"crop_size must be -1 (keep the framing) or 1..{image_size} pixels, got {crop_size!r}")
    rgba = to_rgba(image, mask)
    if crop_size != -1:
        alpha = np.asarray(rgba)[:, :, 3]
        ys, xs = np.nonzero(alpha)
        # The reference crops to (min, max) exclusive of max, dropping the last row/column.
        box = (int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max()))
        if box[2] <= box[0] or box[3] <= box[1]:
            raise InputImageError("the object is a single pixel wide or tall; check the mask")
        cropped = rgba.crop(box)
        scale = crop_size / max(cropped.height, cropped.width)
        new_w, new_h = max(1, int(scale * cropped.width)), max(1, int(scale * cropped.height))
        rgba = _add_margin(cropped.resize((new_w, new_h), resample=Image.BICUBIC), image_size)
    else:
        rgba = _add_margin(rgba, max(rgba.height, rgba.width))
        rgba = rgba.resize((image_size, image_size), resample=Image.BICUBIC)
    array = np.asarray(rgba).astype(np.float32) / 255.0
    alpha = array[:, :, 3:]
    rgb = array[:, :, :3] * alpha + 1 - alpha
    return PreparedInput(image=rgb.astype(np.float32), mask=alpha[:, :, 0].astype(np.float32))
