"""Scalar fields on a regular grid over the object's cube: the common currency of
carving, the SDF refinement and meshing."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
import trimesh
from skimage import measure

#: Half side of the reconstructed cube (a little more than the object's [-0.5, 0.5]^3).
DEFAULT_BOUND = 0.55


class EmptyFieldError(ValueError):
    """A field with nothing inside: there is no surface to mesh."""


@dataclass
class VolumeGrid:
    """A scalar field on a regular grid: ``values`` [R, R, R] indexed [x, y, z], positive
    inside; voxel i sits at ``origin + i * spacing`` on every axis."""

    values: np.ndarray
    origin: float
    spacing: float

    @property
    def resolution(self) -> int:
        return self.values.shape[0]


def grid_axis(resolution: int, bound: float = DEFAULT_BOUND) -> tuple[float, float]:
    """(origin, spacing) of ``resolution`` samples spanning [-bound, bound]."""
    return -bound, 2 * bound / (resolution - 1)


def grid_points(resolution: int, bound: float = DEFAULT_BOUND) -> torch.Tensor:
    """World points of the grid [R^3, 3] (float32), x slowest, z fastest."""
    origin, spacing = grid_axis(resolution, bound)
    axis = torch.arange(resolution, dtype=torch.float32) * spacing + origin
    return torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)


def grid_point_chunks(resolution: int, bound: float = DEFAULT_BOUND, chunk: int = 262_144):
    """The points of ``grid_points`` in order, ``chunk`` at a time (never the whole grid)."""
    origin, spacing = grid_axis(resolution, bound)
    total = resolution**3
    for start in range(0, total, chunk):
        flat = torch.arange(start, min(start + chunk, total), dtype=torch.int64)
        index = torch.stack([flat // resolution**2, flat // resolution % resolution, flat % resolution], -1)
        yield index.to(torch.float32) * spacing + origin


def resample_grid(values: np.ndarray, resolution: int) -> np.ndarray:
    """A field over the cube resampled (trilinear, corners kept) to ``resolution``^3."""
    tensor = torch.from_numpy(np.ascontiguousarray(values, np.float32))[None, None]
    return F.interpolate(tensor, size=(resolution,) * 3, mode="trilinear", align_corners=True)[0, 0].numpy()


def field_to_mesh(grid: VolumeGrid, level: float = 0.0) -> trimesh.Trimesh:
    """Marching cubes of ``values > level`` (outward normals)."""
    if not (grid.values > level).any():
        raise EmptyFieldError("the reconstructed volume is empty: no voxel is inside every silhouette")
    vertices, faces, _, _ = measure.marching_cubes(grid.values, level=level, spacing=(grid.spacing,) * 3)
    vertices = vertices + grid.origin
    mesh = trimesh.Trimesh(vertices, faces[:, ::-1], process=True)
    if mesh.volume < 0:
        mesh.invert()
    return mesh
