"""Sampling grids that tie the 16 views to the 3D volumes (paper section 3.3).

Both grids depend only on the cameras, so they are built once per model and
reused at every denoising step.
"""

from __future__ import annotations

import torch

from ..cameras import CameraSet
from ..constants import CAMERA_DISTANCE, VOLUME_HALF_EXTENT


def _homogeneous_projection(cameras: CameraSet) -> torch.Tensor:
    """[N, 4, 4] projection with a (0, 0, 0, 1) bottom row, float32."""
    projection = cameras.to(torch.float32).projection()
    bottom = torch.zeros(len(cameras), 1, 4, dtype=torch.float32, device=projection.device)
    bottom[:, :, 3] = 1.0
    return torch.cat([projection, bottom], 1)


def volume_points(size: int, half_extent: float = VOLUME_HALF_EXTENT, device=None) -> torch.Tensor:
    """World points of the spatial volume [3, size, size, size] laid out as grid_sample
    reads a volume: voxel [d, h, w] holds (x=lin[w], y=lin[h], z=lin[d])."""
    lin = torch.linspace(-half_extent, half_extent, size, dtype=torch.float32, device=device)
    z, y, x = torch.meshgrid(lin, lin, lin, indexing="ij")
    return torch.stack([x, y, z], 0)


def unprojection_grid(cameras: CameraSet, volume_size: int) -> torch.Tensor:
    """Where each voxel lands in each view's feature map (``cameras`` scaled to it),
    normalised for grid_sample (align_corners=True). Returns [N, V, V*V, 2]."""
    feature_size = cameras.image_size
    projection = _homogeneous_projection(cameras)  # N,4,4
    points = volume_points(volume_size, device=projection.device).reshape(3, -1)  # 3,V^3
    cam = projection[:, :3, :3] @ points[None] + projection[:, :3, 3:]  # N,3,V^3
    depth = cam[:, 2:].clamp(min=1e-4)
    pixels = cam[:, :2] / depth
    normalised = pixels / ((feature_size - 1) / 2) - 1
    return normalised.permute(0, 2, 1).reshape(len(cameras), volume_size, volume_size * volume_size, 2)


def frustum_grid(cameras: CameraSet, depth_samples: int, half_length: float) -> torch.Tensor:
    """Sample points of each view's frustum volume, as grid_sample coordinates into the
    spatial volume. Pixel centres sit at integer coordinates 0..size-1 of the feature
    maps ``cameras`` are scaled to; depths span ``1.5 -+ half_length``. Returns [N, D, H, W, 3]."""
    N, H, W, D = len(cameras), cameras.image_size, cameras.image_size, depth_samples
    projection = _homogeneous_projection(cameras)
    device = projection.device
    distance = torch.full((1,), CAMERA_DISTANCE, dtype=torch.float32, device=device)
    near, far = distance - half_length, distance + half_length
    depths = torch.linspace(0, 1, D, dtype=torch.float32, device=device) * (far - near) + near  # D

    ys, xs = torch.meshgrid(
        torch.arange(H, dtype=torch.float32, device=device),
        torch.arange(W, dtype=torch.float32, device=device),
        indexing="ij",
    )
    pixels = torch.stack([xs, ys, torch.ones_like(xs)], 0).reshape(3, 1, H * W)  # 3,1,HW
    camera_points = pixels * depths.view(1, D, 1)  # 3,D,HW
    inverse = torch.inverse(projection)  # N,4,4
    world = inverse[:, :3, :3] @ camera_points.reshape(1, 3, D * H * W) + inverse[:, :3, 3:]  # N,3,DHW
    world = world / VOLUME_HALF_EXTENT
    return world.reshape(N, 3, D, H, W).permute(0, 2, 3, 4, 1).contiguous()
