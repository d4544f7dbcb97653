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

from collections.abc import Callable

import numpy as np
import torch
from scipy import ndimage

from ..cameras import CameraSet
from ..constants import CAMERA_DISTANCE, FOCAL_PX, IMAGE_SIZE
from .fields import DEFAULT_BOUND, VolumeGrid, grid_axis, grid_points
from .views import sample_view_maps

#: A view is an outlier when it carves more than this share of the others' consensus hull.
OUTLIER_SHARE = 0.03
#: Voxels projected at once (bounds memory; each chunk is a chance to stop).
POINT_CHUNK = 262_144


def mask_signed_distance(masks: np.ndarray) -> np.ndarray:
    """[N, H, W] bool -> signed distance in pixels, positive inside."""
    out = np.empty(masks.shape, np.float32)
    for i, mask in enumerate(masks):
        out[i] = ndimage.distance_transform_edt(mask) - ndimage.distance_transform_edt(~mask)
    return out


def per_view_fields(masks: np.ndarray, cameras: CameraSet, resolution: int, bound: float = DEFAULT_BOUND,
                    between_chunks: Callable[[], None] | None = None) -> tuple[torch.Tensor, float, float]:
    """Signed silhouette distance of every voxel in every view, in world units: [N, R^3].
    ``between_chunks`` is called before each chunk of voxels (a Cancel check)."""
    origin, spacing = grid_axis(resolution, bound)
    size = masks.shape[-1]
    points = grid_points(resolution, bound)
    cameras = cameras.scaled(size)
    sdf = torch.from_numpy(mask_signed_distance(masks))[:, None]
    fields = []
    for chunk in points.split(POINT_CHUNK):
        if between_chunks is not None:
            between_chunks()
        pixels, _ = cameras.project(chunk)
        fields.append(sample_view_maps(sdf, pixels)[..., 0])
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
                tolerance: int = 2, centred_bbox: bool = True,
                between_chunks: Callable[[], None] | None = None) -> tuple[VolumeGrid, list[int]]:
    """The hull as a field (positive inside, roughly metric) and the views it trusts."""
    fields, origin, spacing = per_view_fields(masks, cameras, resolution, bound, between_chunks)
    keep = consensus_views(fields, tolerance)
    values = fields[keep].min(0).values.reshape((resolution,) * 3).numpy()
    if centred_bbox:
        values = centred_bbox_clip(values, origin, spacing)
    # Close the surface at the cube's faces.
    values[[0, -1], :, :] = np.minimum(values[[0, -1], :, :], -spacing)
    values[:, [0, -1], :] = np.minimum(values[:, [0, -1], :], -spacing)
    values[:, :, [0, -1]] = np.minimum(values[:, :, [0, -1]], -spacing)
    return VolumeGrid(values.astype(np.float32), origin, spacing), keep
