"""A turntable: the asset rendered from an orbit of cameras, for previews, animated
images and the workflow thumbnails."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from ..cameras import orbit_cameras
from .asset import MeshAsset
from .raycast import cast, shade_asset

#: Largest frame size (ray casting on the CPU: 512 px is a second a frame).
MAX_SIZE = 1024


class TurntableError(ValueError):
    """Turntable settings that cannot be rendered."""


def turntable(asset: MeshAsset, frames: int = 24, elevation_deg: float = 20.0, size: int = 384,
              light: float = 0.35, start_azimuth_deg: float = 0.0,
              callback: Callable[[int, int], None] | None = None, out: np.ndarray | None = None) -> np.ndarray:
    """[frames, size, size, 3] float images in [0, 1] of ``asset`` (z-up, object frame) on
    white, the camera circling at ``elevation_deg`` from azimuth ``start_azimuth_deg``
    (0: the input view's side). ``callback(done, total)`` after every frame (raise to stop).
    ``out``: a float32 array of that shape to render into (the frames stream into it, so
    the caller's batch is the only copy)."""
    if isinstance(frames, bool) or not isinstance(frames, int) or not 1 <= frames <= 360:
        raise TurntableError(f"frames must be an integer in 1..360, got {frames!r}")
    if isinstance(size, bool) or not isinstance(size, int) or not 32 <= size <= MAX_SIZE:
        raise TurntableError(f"the frame size must be 32..{MAX_SIZE} pixels, got {size!r}")
    if not math.isfinite(elevation_deg) or not -89.0 <= elevation_deg <= 89.0:
        raise TurntableError(f"elevation must be in -89..89 degrees, got {elevation_deg}")
    if not math.isfinite(light) or not 0.0 <= light <= 1.0:
        raise TurntableError(f"light must be in 0..1, got {light}")
    asset.check()
    azimuths = [math.radians(start_azimuth_deg) + 2 * math.pi * i / frames for i in range(frames)]
    cameras = orbit_cameras([math.radians(elevation_deg)] * frames, azimuths, size)
    mesh = asset.to_trimesh()
    images = np.empty((frames, size, size, 3), np.float32) if out is None else out
    if images.shape != (frames, size, size, 3) or images.dtype != np.float32:
        raise TurntableError(f"out must be float32 {(frames, size, size, 3)}, got {images.dtype} {images.shape}")
    for i in range(frames):
        images[i] = shade_asset(asset, cast(mesh, cameras, i), light=light)
        if callback is not None:
            callback(i + 1, frames)
    return images
