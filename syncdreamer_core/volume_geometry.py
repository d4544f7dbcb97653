"""Sampling grids that tie the 16 views to the 3D volumes (paper section 3.3).

Both grids depend only on the cameras, so they are built once per model and
reused at every denoising step.
"""

from __future__ import annotations

import torch

from .constants import (
    CAMERA_DISTANCE,
    FRUSTUM_DEPTH_SAMPLES,
    FRUSTUM_HALF_LENGTH,
    IMAGE_SIZE,
    SPATIAL_VOLUME_SIZE,
    VOLUME_HALF_EXTENT,
)


def _scaled_projection(Ks: torch.Tensor, poses: torch.Tensor, feature_size: int) -> torch.Tensor:
    """[N, 4, 4] projection for feature maps of ``feature_size`` pixels (K scaled from 256 px)."""
    ratio = feature_size / IMAGE_SIZE
    scale = torch.diag(torch.tensor([ratio, ratio, 1.0], dtype=torch.float32, device=Ks.device))
    projection = scale[None] @ Ks.float() @ poses.float()
    bottom = torch.zeros(poses.shape[0], 1, 4, dtype=torch.float32, device=Ks.device)
    bottom[:, :, 3] = 1.0
    return torch.cat([projection, bottom], 1)


def volume_points(size: int = SPATIAL_VOLUME_SIZE, half_extent: float = VOLUME_HALF_EXTENT,
                  device=None) -> torch.Tensor:
    """World points of the spatial volume [3, size, size, size] laid out as grid_sample
    reads a volume: voxel [d, h, w] holds (x=lin[w], y=lin[h], z=lin[d])."""
    lin = torch.linspace(-half_extent, half_extent, size, dtype=torch.float32, device=device)
    z, y, x = torch.meshgrid(lin, lin, lin, indexing="ij")
    return torch.stack([x, y, z], 0)


def unprojection_grid(Ks: torch.Tensor, poses: torch.Tensor, feature_size: int,
                      volume_size: int = SPATIAL_VOLUME_SIZE) -> torch.Tensor:
    """Where each voxel lands in each view's feature map, normalised for grid_sample
    (align_corners=True). Returns [N, V, V*V, 2]."""
    projection = _scaled_projection(Ks, poses, feature_size)  # N,4,4
    points = volume_points(volume_size, device=Ks.device).reshape(3, -1)  # 3,V^3
    cam = projection[:, :3, :3] @ points[None] + projection[:, :3, 3:]  # N,3,V^3
    depth = cam[:, 2:].clamp(min=1e-4)
    pixels = cam[:, :2] / depth
    normalised = pixels / ((feature_size - 1) / 2) - 1
    N, V = poses.shape[0], volume_size
    return normalised.permute(0, 2, 1).reshape(N, V, V * V, 2)


def frustum_grid(Ks: torch.Tensor, poses: torch.Tensor, feature_size: int,
                 depth_samples: int = FRUSTUM_DEPTH_SAMPLES) -> torch.Tensor:
    """Sample points of each view's frustum volume, as grid_sample coordinates into the
    spatial volume. Pixel centres are at integer coordinates 0..feature_size-1; depths
    span ``1.5 -+ FRUSTUM_HALF_LENGTH``. Returns [N, D, H, W, 3]."""
    N, H, W, D = poses.shape[0], feature_size, feature_size, depth_samples
    device = Ks.device
    distance = torch.full((1,), CAMERA_DISTANCE, dtype=torch.float32, device=device)
    near, far = distance - FRUSTUM_HALF_LENGTH, distance + FRUSTUM_HALF_LENGTH
    depths = torch.linspace(0, 1, D, dtype=torch.float32, device=device) * (far - near) + near  # D

    ys, xs = torch.meshgrid(
        torch.arange(H, dtype=torch.float32, device=device),
        torch.arange(W, dtype=torch.float32, device=device),
        indexing="ij",
    )
    pixels = torch.stack([xs, ys, torch.ones_like(xs)], 0).reshape(3, 1, H * W)  # 3,1,HW
    camera_points = pixels * depths.view(1, D, 1)  # 3,D,HW
    inverse = torch.inverse(_scaled_projection(Ks, poses, feature_size))  # N,4,4
    world = inverse[:, :3, :3] @ camera_points.reshape(1, 3, D * H * W) + inverse[:, :3, 3:]  # N,3,DHW
    world = world / VOLUME_HALF_EXTENT
    return world.reshape(N, 3, D, H, W).permute(0, 2, 3, 4, 1).contiguous()
