"""Bicubic resizing of RGBA images exactly as Pillow 10.0.0 does it (the version the
reference pins), with nothing but numpy, so the prepared input does not depend on the
installed Pillow (later versions pick the pass order by image shape and round
differently between the passes).

Pillow resizes RGBA through premultiplied alpha ("RGBa"): premultiply with 8-bit
rounding, a horizontal then a vertical separable pass with 22-bit fixed-point
coefficients and 8-bit results in between, then un-premultiply with integer division.
An unchanged size is a plain copy.
"""

from __future__ import annotations

import numpy as np

#: Fixed-point precision of the 8-bit resampling kernels.
PRECISION_BITS = 32 - 8 - 2
#: Support of the bicubic kernel (a = -0.5).
BICUBIC_SUPPORT = 2.0
#: Input values resized at once (bounds the float64 working memory of a huge image).
BAND_VALUES = 1 << 22


def bicubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with a = -0.5."""
    a = -0.5
    x = np.abs(x)
    near = ((a + 2.0) * x - (a + 3.0)) * x * x + 1
    far = (((x - 5) * x + 8) * x - 4) * a
    return np.where(x < 1.0, near, np.where(x < 2.0, far, 0.0))


def fixed_point_weights(in_size: int, out_size: int) -> np.ndarray:
    """[out_size, in_size] integer coefficients (stored as float64) of one resampling pass."""
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = BICUBIC_SUPPORT * filterscale
    matrix = np.zeros((out_size, in_size), np.float64)
    for xx in range(out_size):
        center = (xx + 0.5) * scale
        xmin = max(int(center - support + 0.5), 0)
        xmax = min(int(center + support + 0.5), in_size)
        taps = np.arange(xmin, xmax)
        weights = bicubic((taps - center + 0.5) * (1.0 / filterscale))
        total = 0.0
        for w in weights.tolist():  # summed in order, as Pillow does (numpy sums pairwise)
            total += w
        if total != 0.0:
            weights = weights / total
        scaled = weights * (1 << PRECISION_BITS)
        matrix[xx, xmin:xmax] = np.where(weights < 0, np.trunc(scaled - 0.5), np.trunc(scaled + 0.5))
    return matrix


def _round_pass(accumulated: np.ndarray) -> np.ndarray:
    """Fixed-point sums -> uint8, rounding half up and clipping like Pillow's clip8."""
    shifted = np.floor((accumulated + (1 << (PRECISION_BITS - 1))) / (1 << PRECISION_BITS))
    return np.clip(shifted, 0, 255).astype(np.uint8)


# The fixed-point products are integers below 2^31 and their sums stay far below 2^53, so
# float64 matrix products give them exactly, in any summation order.

def _horizontal(image: np.ndarray, weights: np.ndarray) -> np.ndarray:
    return _round_pass(np.einsum("ow,hwc->hoc", weights, image.astype(np.float64), optimize=True))


def _vertical(image: np.ndarray, weights: np.ndarray) -> np.ndarray:
    return _round_pass(np.einsum("oh,hwc->owc", weights, image.astype(np.float64), optimize=True))


def premultiply(rgba: np.ndarray) -> np.ndarray:
    """RGBA -> RGBa: colour times alpha / 255, rounded as Pillow's MULDIV255."""
    alpha = rgba[..., 3:].astype(np.uint32)
    product = rgba[..., :3].astype(np.uint32) * alpha + 128
    rgb = ((product >> 8) + product) >> 8
    return np.concatenate([rgb.astype(np.uint8), rgba[..., 3:]], -1)


def unpremultiply(rgba: np.ndarray) -> np.ndarray:
    """RGBa -> RGBA: colour * 255 // alpha (clipped), unchanged where alpha is 0 or 255."""
    alpha = rgba[..., 3:].astype(np.int32)
    rgb = rgba[..., :3].astype(np.int32)
    divided = np.clip((255 * rgb) // np.maximum(alpha, 1), 0, 255)
    rgb = np.where((alpha == 0) | (alpha == 255), rgb, divided)
    return np.concatenate([rgb.astype(np.uint8), rgba[..., 3:]], -1)


def resize_rgba(rgba: np.ndarray, width: int, height: int) -> np.ndarray:
    """``Image.resize((width, height), Image.BICUBIC)`` of an RGBA image [H, W, 4] uint8.

    Premultiplying and the horizontal pass work on bands of rows (both are row-wise, so
    the result is the same): a huge input costs one band of float64, not a copy of itself."""
    if rgba.dtype != np.uint8 or rgba.ndim != 3 or rgba.shape[-1] != 4:
        raise ValueError(f"expected an RGBA uint8 image [H, W, 4], got {rgba.dtype} {rgba.shape}")
    if width < 1 or height < 1:
        raise ValueError(f"cannot resize to {width}x{height}")
    if (height, width) == rgba.shape[:2]:
        return rgba.copy()
    weights = fixed_point_weights(rgba.shape[1], width) if width != rgba.shape[1] else None
    rows = max(1, BAND_VALUES // max(1, rgba.shape[1] * 4))
    bands = []
    for start in range(0, rgba.shape[0], rows):
        band = premultiply(rgba[start:start + rows])
        bands.append(band if weights is None else _horizontal(band, weights))
    out = np.concatenate(bands) if len(bands) > 1 else bands[0]
    if height != rgba.shape[0]:
        out = _vertical(out, fixed_point_weights(rgba.shape[0], height))
    return unpremultiply(np.ascontiguousarray(out))


def fit_size(width: int, height: int, longer_side: int) -> tuple[int, int]:
    """(width, height) scaled so the longer side is ``longer_side``, each side truncated
    (the reference's ``int(scale * side)``)."""
    scale = longer_side / max(width, height)
    return max(1, int(scale * width)), max(1, int(scale * height))


def paste_centred(rgba: np.ndarray, size: int) -> np.ndarray:
    """``rgba`` on a transparent ``size`` x ``size`` canvas at ((size - w) // 2, (size - h) // 2)."""
    canvas = np.zeros((size, size, 4), np.uint8)
    height, width = rgba.shape[:2]
    left, top = (size - width) // 2, (size - height) // 2
    src_x0, src_y0 = max(0, -left), max(0, -top)
    dst_x0, dst_y0 = max(0, left), max(0, top)
    w = min(width - src_x0, size - dst_x0)
    h = min(height - src_y0, size - dst_y0)
    if w > 0 and h > 0:
        canvas[dst_y0:dst_y0 + h, dst_x0:dst_x0 + w] = rgba[src_y0:src_y0 + h, src_x0:src_x0 + w]
    return canvas

