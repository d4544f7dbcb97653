"""The fixed target cameras and the viewpoint embedding (paper section 3.1).

World frame: z is up, azimuth 0 puts the camera on +x, the object sits in
[-0.5, 0.5]^3 and every camera looks at the origin from distance 1.5.
Poses map world points to camera coordinates (camera looks along +z, image x to
the right, image y down), as in the reference ``camera-16.json``. Pixel ``(row, col)``
spans ``[col, col + 1) x [row, row + 1)``: its centre is ``(col + 0.5, row + 0.5)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch

from .constants import (
    CAMERA_DISTANCE,
    FOCAL_PX,
    IMAGE_SIZE,
    PRINCIPAL_PX,
    TARGET_ELEVATION_DEG,
    VIEW_COUNT,
)


def look_at_pose(elevation_rad: float, azimuth_rad: float, distance: float = CAMERA_DISTANCE) -> torch.Tensor:
    """World-to-camera [3, 4] (float64) of a camera on the sphere looking at the origin, z up."""
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
    """``K`` [N, 3, 3] for images of ``image_size`` pixels, ``poses`` [N, 3, 4]
    world-to-camera; ``azimuths`` / ``elevations`` [N] in radians where known.
    Every camera operation of the project (resizing, projecting, casting rays) is here."""

    K: torch.Tensor
    poses: torch.Tensor
    image_size: int = IMAGE_SIZE
    azimuths: torch.Tensor | None = None
    elevations: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.poses.shape[0]

    def scaled(self, image_size: int) -> CameraSet:
        """The same cameras for images of ``image_size`` pixels (K scaled, pose kept)."""
        ratio = image_size / self.image_size
        scale = torch.diag(torch.tensor([ratio, ratio, 1.0], dtype=self.K.dtype, device=self.K.device))
        return replace(self, K=scale @ self.K, image_size=image_size)

    def to(self, dtype: torch.dtype | None = None, device=None) -> CameraSet:
        def convert(t):
            return None if t is None else t.to(device=device, dtype=dtype)

        return replace(self, K=convert(self.K), poses=convert(self.poses), azimuths=convert(self.azimuths),
                       elevations=convert(self.elevations))

    def subset(self, indices) -> CameraSet:
        index = torch.as_tensor(indices, dtype=torch.long)
        pick = lambda t: None if t is None else t[index]  # noqa: E731
        return replace(self, K=self.K[index], poses=self.poses[index], azimuths=pick(self.azimuths),
                       elevations=pick(self.elevations))

    def projection(self) -> torch.Tensor:
        """Projection matrices K [R|t], [N, 3, 4]."""
        return self.K @ self.poses

    def centers(self) -> torch.Tensor:
        """Camera centres in world coordinates [N, 3]."""
        R, t = self.poses[:, :, :3], self.poses[:, :, 3:]
        return (-R.transpose(1, 2) @ t)[..., 0]

    def project(self, points: torch.Tensor, min_depth: float = 1e-6) -> tuple[torch.Tensor, torch.Tensor]:
        """World points [P, 3] -> pixel coordinates [N, P, 2] and camera depth [N, P]."""
        projection = self.projection().to(points.dtype)
        homogeneous = torch.cat([points, torch.ones_like(points[:, :1])], 1)
        image = torch.einsum("nij,pj->npi", projection, homogeneous)
        depth = image[..., 2].clamp(min=min_depth)
        return image[..., :2] / depth[..., None], depth

    def rays(self, views: torch.Tensor, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Rays through continuous pixel coordinates ``pixels`` [R, 2] (x, y) of cameras
        ``views`` [R]: origins [R, 3] and unit directions [R, 3] in the world frame."""
        K, R, t = self.K[views], self.poses[views, :, :3], self.poses[views, :, 3]
        homogeneous = torch.cat([pixels, torch.ones_like(pixels[:, :1])], 1)
        camera_dirs = torch.linalg.solve(K, homogeneous[..., None])
        directions = (R.transpose(1, 2) @ camera_dirs)[..., 0]
        origins = -(R.transpose(1, 2) @ t[..., None])[..., 0]
        return origins, torch.nn.functional.normalize(directions, dim=-1)

    def pixel_rays(self, view: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Rays through every pixel centre of camera ``view``, row-major: [H*W, 3] each."""
        size = self.image_size
        rows, cols = torch.meshgrid(torch.arange(size, dtype=self.K.dtype), torch.arange(size, dtype=self.K.dtype),
                                    indexing="ij")
        pixels = torch.stack([cols.reshape(-1) + 0.5, rows.reshape(-1) + 0.5], -1).to(self.K.device)
        return self.rays(torch.full((size * size,), view, dtype=torch.long, device=self.K.device), pixels)


def intrinsics(image_size: int = IMAGE_SIZE, dtype=torch.float32) -> torch.Tensor:
    """Pinhole K [3, 3] of the target views for 256 px images, scaled to ``image_size``."""
    s = image_size / IMAGE_SIZE
    return torch.tensor(
        [[FOCAL_PX * s, 0.0, PRINCIPAL_PX * s], [0.0, FOCAL_PX * s, PRINCIPAL_PX * s], [0.0, 0.0, 1.0]],
        dtype=dtype,
    )


def orbit_cameras(elevations: list[float], azimuths: list[float], image_size: int = IMAGE_SIZE) -> CameraSet:
    """Cameras at distance 1.5 looking at the origin with the target intrinsics; angles in radians."""
    poses = torch.stack([look_at_pose(e, a) for e, a in zip(elevations, azimuths, strict=True)]).float()
    K = intrinsics().unsqueeze(0).repeat(len(poses), 1, 1)
    cameras = CameraSet(K=K, poses=poses, azimuths=torch.tensor(azimuths, dtype=torch.float32),
                        elevations=torch.tensor(elevations, dtype=torch.float32))
    return cameras if image_size == IMAGE_SIZE else cameras.scaled(image_size)


def target_cameras(view_count: int = VIEW_COUNT, elevation_deg: float = TARGET_ELEVATION_DEG) -> CameraSet:
    """The SyncDreamer target cameras: azimuth ``360 / view_count * i``, fixed elevation."""
    return orbit_cameras([math.radians(elevation_deg)] * view_count,
                         [2 * math.pi * i / view_count for i in range(view_count)])


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
