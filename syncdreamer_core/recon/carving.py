"""Silhouette carving of a visual hull from the 16 views (the fast path).

Each view's mask becomes a 2D signed distance map; every voxel of a grid over
the object's cube reads it at its projection. Views vote: a view whose silhouette
disagrees with the consensus of the others (a bad mask) is detected and left out,
so one or two broken masks cannot punch holes into the object. The hull is the
zero level of a continuous field, so marching cubes places the surface with
sub-voxel accuracy.

SyncDreamer's training renders centre every object's bounding box on the origin
(reference ``blender_script.py``), so the object's extent below the origin mirrors
its extent above: the part of the hull that no camera at 30 degrees elevation can
carve (under the object) is clipped with that prior.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
import trimesh
from scipy import ndimage
from skimage import measure

from ..cameras import CameraSet
from ..constants import CAMERA_DISTANCE, FOCAL_PX, IMAGE_SIZE

#: Half side of the reconstructed cube (a little more than the object's [-0.5, 0.5]^3).
DEFAULT_BOUND = 0.55
#: A view is an outlier when it carves more than this share of the others' consensus hull.
OUTLIER_SHARE = 0.03


@dataclass
class VolumeGrid:
    """A scalar field on a regular grid: ``values`` [R, R, R] indexed [x, y, z]."""

    values: np.ndarray
    origin: float
    spacing: float

    @property
    def resolution(self) -> int:
        return self.values.shape[0]

    def points(self) -> np.ndarray:
        axis = self.origin + np.arange(self.resolution) * self.spacing
        return np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), -1)


def resample_grid(values: np.ndarray, resolution: int) -> np.ndarray:
    """A field over the cube resampled (trilinear, corners kept) to ``resolution``^3."""
    tensor = torch.from_numpy(np.ascontiguousarray(values, np.float32))[None, None]
    return F.interpolate(tensor, size=(resolution,) * 3, mode="trilinear", align_corners=True)[0, 0].numpy()


def grid_axis(resolution: int, bound: float = DEFAULT_BOUND) -> tuple[float, float]:
    spacing = 2 * bound / (resolution - 1)
    return -bound, spacing


def mask_signed_distance(masks: np.ndarray) -> np.ndarray:
    """[N, H, W] bool -> signed distance in pixels, positive inside."""
    out = np.empty(masks.shape, np.float32)
    for i, mask in enumerate(masks):
        out[i] = ndimage.distance_transform_edt(mask) - ndimage.distance_transform_edt(~mask)
    return out


def project(points: torch.Tensor, cameras: CameraSet, image_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """World points [P, 3] -> pixel coordinates [N, P, 2] (pixel i spans [i, i+1)) and depth [N, P]."""
    projection = cameras.projection(image_size).to(points.dtype)  # N,3,4
    homogeneous = torch.cat([points, torch.ones_like(points[:, :1])], 1)  # P,4
    image = torch.einsum("nij,pj->npi", projection, homogeneous)
    depth = image[..., 2].clamp(min=1e-6)
    return image[..., :2] / depth[..., None], depth


def sample_views(maps: torch.Tensor, pixels: torch.Tensor, padding: str = "border") -> torch.Tensor:
    """Bilinear samples of per-view maps [N, C, H, W] at pixel coordinates [N, P, 2] -> [N, P, C]."""
    size = maps.shape[-1]
    grid = (pixels / size * 2 - 1)[:, :, None, :]
    values = F.grid_sample(maps, grid.to(maps.dtype), mode="bilinear", padding_mode=padding, align_corners=False)
    return values[..., 0].permute(0, 2, 1)


def per_view_fields(masks: np.ndarray, cameras: CameraSet, resolution: int,
                    bound: float = DEFAULT_BOUND) -> tuple[torch.Tensor, float, float]:
    """Signed silhouette distance of every voxel in every view, in world units: [N, R^3]."""
    origin, spacing = grid_axis(resolution, bound)
    size = masks.shape[-1]
    axis = torch.arange(resolution, dtype=torch.float32) * spacing + origin
    points = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)
    sdf = torch.from_numpy(mask_signed_distance(masks))[:, None]
    fields = []
    for chunk in points.split(262_144):
        pixels, _ = project(chunk, cameras, size)
        fields.append(sample_views(sdf, pixels)[..., 0])
    pixel_size = CAMERA_DISTANCE / (FOCAL_PX * size / IMAGE_SIZE)
    return torch.cat(fields, 1) * pixel_size, origin, spacing


def consensus_views(fields: torch.Tensor, tolerance: int) -> list[int]:
    """Views that agree with the vote of the others (carve at most OUTLIER_SHARE of it)."""
    if tolerance <= 0:
        return list(range(fields.shape[0]))
    vote = fields.kthvalue(tolerance + 1, dim=0).values
    inside = vote > 0
    if not inside.any():
        return list(range(fields.shape[0]))
    carved = ((fields[:, inside] < 0).float().mean(1)).tolist()
    keep = [i for i, share in enumerate(carved) if share <= OUTLIER_SHARE]
    return keep if len(keep) >= fields.shape[0] - tolerance else sorted(
        range(fields.shape[0]), key=lambda i: carved[i])[: fields.shape[0] - tolerance]


def centred_bbox_clip(values: np.ndarray, origin: float, spacing: float) -> np.ndarray:
    """Clip the field below the mirror image of its top about z = 0.

    Only height needs the prior: the cameras see the object's full horizontal extent
    (and ``recentring_offset`` centres it), but never its underside.
    """
    inside = values > 0
    if not inside.any():
        return values
    axis = origin + np.arange(values.shape[0]) * spacing
    level = np.nonzero(inside.any(axis=(0, 1)))[0][-1]
    if level + 1 < values.shape[2]:  # where the field crosses zero above the highest inside voxels
        below, above = values[..., level][inside[..., level]], values[..., level + 1][inside[..., level]]
        top = axis[level] + spacing * float((below / np.maximum(below - above, 1e-12)).clip(0, 1).max())
    else:
        top = axis[level]
    return np.minimum(values, (axis + top).reshape(1, 1, -1))


def visual_hull(masks: np.ndarray, cameras: CameraSet, resolution: int = 128, bound: float = DEFAULT_BOUND,
                tolerance: int = 2, centred_bbox: bool = True) -> tuple[VolumeGrid, list[int]]:
    """The hull as a field (positive inside, roughly metric) and the views it trusts."""
    fields, origin, spacing = per_view_fields(masks, cameras, resolution, bound)
    keep = consensus_views(fields, tolerance)
    values = fields[keep].min(0).values.reshape((resolution,) * 3).numpy()
    if centred_bbox:
        values = centred_bbox_clip(values, origin, spacing)
    # Close the surface at the cube's faces.
    values[[0, -1], :, :] = np.minimum(values[[0, -1], :, :], -spacing)
    values[:, [0, -1], :] = np.minimum(values[:, [0, -1], :], -spacing)
    values[:, :, [0, -1]] = np.minimum(values[:, :, [0, -1]], -spacing)
    return VolumeGrid(values.astype(np.float32), origin, spacing), keep


def field_to_mesh(grid: VolumeGrid, level: float = 0.0) -> trimesh.Trimesh:
    """Marching cubes of ``values > level`` (outward normals)."""
    if not (grid.values > level).any():
        raise ValueError("the reconstructed volume is empty: no voxel is inside every silhouette")
    vertices, faces, _, _ = measure.marching_cubes(grid.values, level=level, spacing=(grid.spacing,) * 3)
    vertices = vertices + grid.origin
    mesh = trimesh.Trimesh(vertices, faces[:, ::-1], process=True)
    if mesh.volume < 0:
        mesh.invert()
    return mesh


def clean_mesh(mesh: trimesh.Trimesh, smooth_iterations: int = 10, min_component_share: float = 0.02,
               max_faces: int | None = None) -> trimesh.Trimesh:
    """Drop small floating pieces, smooth (Taubin, volume-preserving), optionally decimate."""
    parts = mesh.split(only_watertight=False)
    if len(parts) > 1:
        sizes = np.array([abs(p.volume) if p.is_watertight else p.area for p in parts])
        parts = [p for p, s in zip(parts, sizes, strict=True) if s >= min_component_share * sizes.max()]
        mesh = trimesh.util.concatenate(parts)
    if smooth_iterations:
        trimesh.smoothing.filter_taubin(mesh, lamb=0.5, nu=-0.53, iterations=smooth_iterations)
    if max_faces and len(mesh.faces) > max_faces:
        mesh = mesh.simplify_quadric_decimation(face_count=max_faces)
    return mesh
