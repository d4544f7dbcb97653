"""Input preparation exactly as the reference does it (``ldm/util.py`` prepare_inputs).

- ``crop_size = -1``: pad the whole image to a centred square with a transparent
  margin and resize it to 256 (bicubic).
- ``crop_size = N``: crop to the bounding box of the alpha mask, resize (bicubic) so
  its longer side is N pixels (sides truncated to integers) and paste it centred on
  a transparent 256x256 canvas.
- Composite over white: rgb * a + (1 - a).

Resizing reproduces Pillow 10.0.0, which the reference pins, bit for bit (``resample``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from .background import border_background, border_white_share, no_object_message, plain_colour
from .constants import IMAGE_SIZE
from .resample import fit_size, paste_centred, resize_rgba

#: Input preparation's white: every channel >= 245 (see ``background``).
WHITE_TOLERANCE = 10
#: Share of border pixels that must be white for a mask-less image to be accepted.
WHITE_BORDER_SHARE = 0.9
#: Smallest object size: below this the network sees a speck, not an object.
MIN_CROP_SIZE = 16
#: Smallest share of the prepared 256x256 input the object must cover.
MIN_OBJECT_SHARE = 0.001
#: Values converted at once by ``to_uint8`` (bounds its float64 working memory).
CONVERT_BAND = 1 << 22


class InputImageError(ValueError):
    """An input image that cannot be prepared, with what to do about it."""


class NoObjectMaskError(InputImageError):
    """Nothing marks the object: no transparency, no mask, and a background that is not
    plain white. Each route says which of its own tools gives a mask."""


@dataclass
class PreparedInput:
    """``image``: [256, 256, 3] float32 in [0, 1] on white; ``mask``: [256, 256] float32
    foreground alpha in [0, 1]; ``rgba``: the uint8 RGBA canvas both come from."""

    image: np.ndarray
    mask: np.ndarray
    rgba: np.ndarray | None = None

    def model_input(self) -> np.ndarray:
        """The image in [-1, 1], as the network sees it."""
        return self.image * 2.0 - 1.0


def to_uint8(array: np.ndarray, name: str = "image") -> np.ndarray:
    """uint8, or float in [0, 1] (rounded) -> uint8. Floats outside [0, 1] are refused:
    they are usually 0..255 values that would all turn white.

    Converted a band of rows at a time, so a 100-megapixel float image costs its uint8
    copy plus one band, not several float64 copies of itself."""
    array = np.asarray(array)
    if array.dtype == np.uint8:
        return array
    if array.dtype == bool:
        return array.astype(np.uint8) * 255
    if not np.issubdtype(array.dtype, np.number):
        raise InputImageError(f"the {name} must hold numbers, got dtype {array.dtype}")
    if array.size:
        low, high = float(np.min(array)), float(np.max(array))
        if not (np.isfinite(low) and np.isfinite(high)):
            raise InputImageError(f"the {name} contains NaN or infinite values")
        if low < -1e-3 or high > 1 + 1e-3:
            raise InputImageError(
                f"the {name}'s values must be in 0..1 (floats) or 0..255 (uint8); got {low:g}..{high:g}"
                + (": divide by 255" if high > 1.5 else ""))
    out = np.empty(array.shape, np.uint8)
    rows = max(1, CONVERT_BAND // max(1, array[:1].size))
    for start in range(0, max(1, array.shape[0]), rows):
        band = np.asarray(array[start:start + rows], dtype=np.float64)
        out[start:start + rows] = np.clip(np.round(band * 255.0), 0, 255)
    return out


def object_on_white(rgb: np.ndarray) -> np.ndarray:
    """The object's alpha (uint8) of an image on a clean white background; InputImageError
    for a plain image or an empty one, NoObjectMaskError when the border is not white."""
    colour = plain_colour(to_uint8(rgb))
    if colour:
        raise InputImageError(no_object_message(colour))
    alpha = white_background_mask(rgb)
    if alpha is None:
        raise NoObjectMaskError("the background is not white (the image's border is not mostly white): use a "
                                "background-removal node instead")
    if (alpha > 127).mean() < MIN_OBJECT_SHARE / 4:
        raise InputImageError("no object on the white background: almost every pixel is background")
    return alpha


def white_background_mask(rgb: np.ndarray) -> np.ndarray | None:
    """Foreground alpha (uint8) of an image on a clean white background, or None when the
    border is not mostly white."""
    rgb = to_uint8(rgb)
    if border_white_share(rgb, WHITE_TOLERANCE) < WHITE_BORDER_SHARE:
        return None
    return np.where(border_background(rgb, WHITE_TOLERANCE), 0, 255).astype(np.uint8)


def pil_to_array(image: Image.Image) -> np.ndarray:
    """A Pillow image as [H, W, 3|4] uint8: RGBA when it has transparency (RGBA, LA,
    P with a transparent colour), RGB otherwise (grey, CMYK, 16-bit, ...)."""
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        # 16-bit and float greys: Pillow's RGB conversion would clip them to white.
        grey = np.asarray(image, dtype=np.float64)
        if grey.size and grey.max() > 255:
            grey = grey / 257.0  # 16-bit levels
        return np.repeat(np.clip(np.round(grey), 0, 255).astype(np.uint8)[..., None], 3, -1)
    transparent = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info
    return np.asarray(image.convert("RGBA" if transparent else "RGB"))


def _marks_no_object(alpha: np.ndarray) -> bool:
    """Opaque everywhere, or one level everywhere: an alpha that says nothing about where the
    object is (a photo saved as RGBA; a decoder's constant alpha, e.g. 254 for a CMYK JPEG
    read through PyAV, as ComfyUI 0.27's LoadImage does)."""
    return bool(alpha.size) and int(alpha.min()) > 0 and int(alpha.max()) - int(alpha.min()) <= 2


def to_rgba(image: Image.Image | np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Combine an image and an optional foreground mask into an RGBA uint8 array.

    image: Pillow image, or [H, W, 3|4] array (uint8 or float in [0, 1]).
    mask: [H, W] foreground alpha (uint8 or float in [0, 1]); it replaces any alpha.
    Without alpha and without mask, a near-white background is detected. An alpha
    channel or mask that is opaque everywhere marks no object (a photo saved as RGBA, a
    mask of the whole frame): it is treated as absent, so the white background is
    detected as for RGB, and refused with that reason when there is none.
    """
    array = pil_to_array(image) if isinstance(image, Image.Image) else np.asarray(image)
    if array.ndim != 3 or array.shape[-1] not in (3, 4):
        raise InputImageError(f"the input image must be [H, W, 3] (RGB) or [H, W, 4] (RGBA), got {array.shape}")
    if min(array.shape[:2]) < 8:
        raise InputImageError(f"the input image is too small ({array.shape[1]}x{array.shape[0]} pixels)")
    array = to_uint8(array)
    rgb = array[..., :3]
    alpha, source = None, None
    if mask is not None:
        mask = np.asarray(mask)
        if mask.shape != rgb.shape[:2]:
            raise InputImageError(f"the mask is {mask.shape[1]}x{mask.shape[0]} but the image is "
                                  f"{rgb.shape[1]}x{rgb.shape[0]}; they must have the same size")
        alpha, source = to_uint8(mask, "mask"), "the mask covers the whole image"
    elif array.shape[-1] == 4:
        alpha, source = array[..., 3], "the image's alpha channel is the same everywhere"
    if alpha is not None and _marks_no_object(alpha):
        alpha = None
    else:
        source = None
    if alpha is None:
        colour = plain_colour(rgb)
        if colour:
            raise InputImageError(no_object_message(colour))
        alpha = white_background_mask(rgb)
        if alpha is None:
            reason = f"{source} (it marks no object), and" if source else "the input image has no alpha channel, " \
                "no mask was given, and"
            raise NoObjectMaskError(
                f"{reason} its background is not white: remove the background first (e.g. with a "
                "background-removal node) and pass its mask, or use an RGBA image whose alpha marks the object")
    if not alpha.any():
        if mask is not None:
            raise InputImageError("the mask is empty (0 everywhere): it selects no object pixel")
        raise InputImageError("the image's alpha channel is 0 everywhere: the image is fully transparent, no object")
    return np.dstack([rgb, alpha])


def check_crop_size(crop_size, image_size: int = IMAGE_SIZE) -> int:
    if not isinstance(crop_size, (int, np.integer)) or isinstance(crop_size, bool) or not (
        crop_size == -1 or MIN_CROP_SIZE <= crop_size <= image_size
    ):
        raise InputImageError(f"crop_size must be -1 (keep the framing) or {MIN_CROP_SIZE}..{image_size} pixels "
                              f"(the object's longer side; the authors use 150-200), got {crop_size!r}")
    return int(crop_size)


def prepare_input(image: Image.Image | np.ndarray, mask: np.ndarray | None = None, crop_size: int = -1,
                  image_size: int = IMAGE_SIZE) -> PreparedInput:
    """Centre, scale and whiten an object image for SyncDreamer (see module doc)."""
    crop_size = check_crop_size(crop_size, image_size)
    rgba = to_rgba(image, mask)
    if crop_size != -1:
        alpha = rgba[..., 3]
        ys, xs = np.flatnonzero(alpha.any(1)), np.flatnonzero(alpha.any(0))
        # The reference crops to (min, max) exclusive of max, dropping the last row/column.
        x0, y0, x1, y1 = int(xs[0]), int(ys[0]), int(xs[-1]), int(ys[-1])
        if x1 <= x0 or y1 <= y0:
            raise InputImageError("the object is a single pixel wide or tall; check the mask")
        cropped = rgba[y0:y1, x0:x1]
        width, height = fit_size(cropped.shape[1], cropped.shape[0], crop_size)
        canvas = paste_centred(resize_rgba(cropped, width, height), image_size)
    else:
        square = paste_centred(rgba, max(rgba.shape[:2]))
        canvas = resize_rgba(square, image_size, image_size)
    array = canvas.astype(np.float32) / 255.0
    alpha = array[:, :, 3:]
    if (alpha[..., 0] > 0.5).mean() < MIN_OBJECT_SHARE:
        raise InputImageError(
            "after preparation the object covers almost nothing of the 256x256 input: raise crop_size or "
            "check the mask")
    rgb = array[:, :, :3] * alpha + 1 - alpha
    return PreparedInput(image=rgb.astype(np.float32), mask=alpha[:, :, 0].astype(np.float32), rgba=canvas)
