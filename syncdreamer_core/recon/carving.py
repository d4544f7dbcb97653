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
from .fields import DEFAULT_BOUND, VolumeGrid, grid_axis, grid_point_chunks
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


class SilhouetteFields:
    """Signed silhouette distance of the grid's voxels in every view, in world units,
    computed ``POINT_CHUNK`` voxels at a time: [N, chunk] blocks, never [N, R^3], so the
    memory is the grid itself whatever the resolution."""

    def __init__(self, masks: np.ndarray, cameras: CameraSet, resolution: int, bound: float = DEFAULT_BOUND,
                 between_chunks: Callable[[], None] | None = None):
        self.origin, self.spacing = grid_axis(resolution, bound)
        self.resolution, self.bound, self.between_chunks = resolution, bound, between_chunks
        size = masks.shape[-1]
        self.cameras = cameras.scaled(size)
        self.sdf = torch.from_numpy(mask_signed_distance(masks))[:, None]
        self.pixel_size = CAMERA_DISTANCE / (FOCAL_PX * size / IMAGE_SIZE)

    def chunks(self):
        """[N, chunk] fields, in grid order (x slowest, z fastest)."""
        for points in grid_point_chunks(self.resolution, self.bound, POINT_CHUNK):
            if self.between_chunks is not None:
                self.between_chunks()
            pixels, _ = self.cameras.project(points)
            yield sample_view_maps(self.sdf, pixels)[..., 0] * self.pixel_size


def consensus_views(fields: SilhouetteFields, tolerance: int) -> list[int]:
    """Views that agree with the vote of the others (carve at most OUTLIER_SHARE of it)."""
    views = fields.sdf.shape[0]
    if tolerance <= 0:
        return list(range(views))
    inside_count, carved_count = 0, torch.zeros(views, dtype=torch.int64)
    for chunk in fields.chunks():
        inside = chunk.kthvalue(tolerance + 1, dim=0).values > 0
        inside_count += int(inside.sum())
        carved_count += (chunk[:, inside] < 0).sum(1)
    if not inside_count:
        return list(range(views))
    carved = (carved_count.double() / inside_count).tolist()
    keep = [i for i, share in enumerate(carved) if share <= OUTLIER_SHARE]
    return keep if len(keep) >= views - tolerance else sorted(range(views), key=lambda i: carved[i])[: views - tolerance]


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
    fields = SilhouetteFields(masks, cameras, resolution, bound, between_chunks)
    origin, spacing = fields.origin, fields.spacing
    keep = consensus_views(fields, tolerance)
    values = torch.cat([chunk[keep].min(0).values for chunk in fields.chunks()]).reshape((resolution,) * 3).numpy()
    if centred_bbox:
        values = centred_bbox_clip(values, origin, spacing)
    # Close the surface at the cube's faces.
    values[[0, -1], :, :] = np.minimum(values[[0, -1], :, :], -spacing)
    values[:, [0, -1], :] = np.minimum(values[:, [0, -1], :], -spacing)
    values[:, :, [0, -1]] = np.minimum(values[:, :, [0, -1]], -spacing)
    return VolumeGrid(values.astype(np.float32), origin, spacing), keep
