"""The fixed target cameras and the viewpoint embedding (paper section 3.1).

World frame: z is up, azimuth 0 puts the camera on +x, the object sits in
[-0.5, 0.5]^3 and every camera looks at the origin from distance 1.5.
Poses map world points to camera coordinates (camera looks along +z, image x to
the right, image y down), as in the reference ``camera-16.json``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .constants import (
    CAMERA_DISTANCE,
    FOCAL_PX,
    IMAGE_SIZE,
    PRINCIPAL_PX,
    TARGET_ELEVATION_DEG,
    VIEW_COUNT,
)


def intrinsics(image_size: int = IMAGE_SIZE, dtype=torch.float32) -> torch.Tensor:
    """Pinhole K [3, 3] of the target views, scaled to ``image_size`` pixels."""
    s = image_size / IMAGE_SIZE
    return torch.tensor(
        [[FOCAL_PX * s, 0.0, PRINCIPAL_PX * s], [0.0, FOCAL_PX * s, PRINCIPAL_PX * s], [0.0, 0.0, 1.0]],
        dtype=dtype,
    )


def look_at_pose(elevation_rad: float, azimuth_rad: float, distance: float = CAMERA_DISTANCE) -> torch.Tensor:
    """World-to-camera [3, 4] of a camera on the sphere looking at the origin, z up."""
    ce, se = math.cos(elevation_rad), math.sin(elevation_rad)
    ca, sa = math.cos(azimuth_rad), math.sin(azimuth_rad)
    forward = torch.tensor([-ce * ca, -ce * sa, -se], dtype=torch.float64)  # camera +z
    right = torch.tensor([-sa, ca, 0.0], dtype=torch.float64)  # camera +x
    down = torch.linalg.cross(forward, right)  # camera +y
    rotation = torch.stack([right, down, forward], 0)
    translation = torch.tensor([0.0, 0.0, distance], dtype=torch.float64)
    return torch.cat([rotation, translation[:, None]], 1)


@dataclass(frozen=True)
class CameraSet:
    """``K`` [N, 3, 3] for 256 px images, ``poses`` [N, 3, 4] world-to-camera,
    ``azimuths`` [N] and ``elevations`` [N] in radians."""

    K: torch.Tensor
    poses: torch.Tensor
    azimuths: torch.Tensor
    elevations: torch.Tensor

    def __len__(self) -> int:
        return self.poses.shape[0]

    def centers(self) -> torch.Tensor:
        """Camera centres in world coordinates [N, 3]."""
        R, t = self.poses[:, :, :3], self.poses[:, :, 3:]
        return (-R.transpose(1, 2) @ t)[..., 0]

    def projection(self, image_size: int = IMAGE_SIZE) -> torch.Tensor:
        """Full projection matrices [N, 3, 4] for ``image_size`` pixel images."""
        s = image_size / IMAGE_SIZE
        scale = torch.diag(torch.tensor([s, s, 1.0], dtype=self.K.dtype))
        return scale @ self.K @ self.poses


def target_cameras(view_count: int = VIEW_COUNT, elevation_deg: float = TARGET_ELEVATION_DEG) -> CameraSet:
    """The SyncDreamer target cameras: azimuth ``360 / view_count * i``, fixed elevation."""
    elevation = math.radians(elevation_deg)
    azimuths = [2 * math.pi * i / view_count for i in range(view_count)]
    poses = torch.stack([look_at_pose(elevation, a) for a in azimuths]).float()
    K = intrinsics().unsqueeze(0).repeat(view_count, 1, 1)
    return CameraSet(
        K=K,
        poses=poses,
        azimuths=torch.tensor(azimuths, dtype=torch.float32),
        elevations=torch.full((view_count,), elevation, dtype=torch.float32),
    )


def wrap_to_pi(angles: torch.Tensor) -> torch.Tensor:
    """Map angles to [-pi, pi), the form the checkpoint stores its ``azimuth`` buffer in."""
    return (angles + math.pi) % (2 * math.pi) - math.pi


def viewpoint_embedding(input_elevation: torch.Tensor, azimuths: torch.Tensor) -> torch.Tensor:
    """Relative viewpoint of every target view w.r.t. the input view.

    input_elevation: [B] radians (positive = camera above the object).
    azimuths: [N] target azimuths in radians; the input view is target view 0.
    Returns [B, N, 4] = [d_elevation, sin d_azimuth, cos d_azimuth, 0].

    Zero123 measures elevation downwards, hence d_elevation =
    (-target) - (-input) = input - 30 degrees.
    """
    if not torch.is_tensor(input_elevation) or not input_elevation.is_floating_point():
        raise TypeError(
            "input elevation must be a floating-point tensor of radians with shape [B], "
            f"got {type(input_elevation).__name__}"
        )
    elevation_input = -input_elevation.to(azimuths.dtype)
    d_elevation = -math.radians(TARGET_ELEVATION_DEG) - elevation_input  # [B]
    d_azimuth = azimuths - azimuths[0]  # [N]
    B, N = elevation_input.shape[0], azimuths.shape[0]
    d_elevation = d_elevation[:, None].expand(B, N)
    d_azimuth = d_azimuth[None, :].expand(B, N)
    return torch.stack(
        [d_elevation, torch.sin(d_azimuth), torch.cos(d_azimuth), torch.zeros_like(d_azimuth)], -1
    )
