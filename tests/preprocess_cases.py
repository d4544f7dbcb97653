"""Synthetic RGBA inputs for the preprocessing reference (fixed seeds: numpy's PCG64
streams are stable across versions): blobs with soft and hard alpha, tall, wide, small
and large, in front of transparent and opaque margins."""

from __future__ import annotations

import numpy as np

#: The crop sizes the authors use, and -1 (keep the framing).
CROP_SIZES = (-1, 150, 180, 200, 256)


def synthetic_cases(count: int = 24):
    for index in range(count):
        rng = np.random.default_rng(1000 + index)
        height, width = (int(v) for v in rng.integers(40, 420, 2))
        if index % 3 == 0:
            height, width = max(height, width) * 2, min(height, width)  # tall
        yy, xx = np.mgrid[0:height, 0:width]
        cy, cx = rng.uniform(0.3, 0.7) * height, rng.uniform(0.3, 0.7) * width
        ry, rx = rng.uniform(0.15, 0.45) * height, rng.uniform(0.15, 0.45) * width
        inside = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2
        alpha = np.clip((1.0 - inside) * rng.uniform(2, 30), 0, 1) if index % 2 else (inside < 1).astype(float)
        rgb = rng.integers(0, 256, (height, width, 3)).astype(np.float64)
        rgb = (rgb + np.roll(rgb, 1, 0) + np.roll(rgb, 1, 1)) / 3  # some structure, not pure noise
        image = np.dstack([rgb, alpha * 255]).round().astype(np.uint8)
        yield f"synthetic-{index:02d}", image
