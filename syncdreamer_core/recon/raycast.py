"""Rendering a mesh at pinhole cameras by ray casting, on the CPU: depth, coverage,
triangle ids, and colours from vertex colours or a texture. Rays are cast by Embree
(trimesh's interface) where it is installed, and by the equivalent rasterization
(``raster.py``) where Embree has no wheel (ARM Linux): the same hits either way.

Pixel ``(row, col)`` is sampled through its centre ``(col + 0.5, row + 0.5)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import trimesh

from ..cameras import CameraSet
from .raster import first_hits


@dataclass
class RayHits:
    """Per-pixel results of one view: ``depth`` [H, W] camera z (inf where empty),
    ``face`` [H, W] triangle index (-1 where empty), ``points`` [H, W, 3] world hits."""

    depth: np.ndarray
    face: np.ndarray
    points: np.ndarray
    origin: np.ndarray | None = None

    @property
    def mask(self) -> np.ndarray:
        return self.face >= 0


def cast(mesh: trimesh.Trimesh, cameras: CameraSet, view: int) -> RayHits:
    """First hits of the rays through every pixel centre of camera ``view`` (images of
    ``cameras.image_size`` pixels)."""
    cameras = cameras.to(torch.float64)
    size = cameras.image_size
    origin = cameras.centers()[view].numpy()
    if not trimesh.ray.has_embree:
        depth, face, points = first_hits(np.asarray(mesh.vertices, np.float64), np.asarray(mesh.faces),
                                         cameras.K[view].numpy(), cameras.poses[view].numpy(), size)
        return RayHits(depth.reshape(size, size), face.reshape(size, size), points.reshape(size, size, 3), origin)
    origins, directions = (t.numpy() for t in cameras.pixel_rays(view))
    locations, ray_index, face_index = mesh.ray.intersects_location(origins, directions, multiple_hits=False)
    depth = np.full(size * size, np.inf)
    face = np.full(size * size, -1, dtype=np.int64)
    points = np.zeros((size * size, 3))
    if len(ray_index):
        pose = cameras.poses[view].numpy()
        camera_points = locations @ pose[:, :3].T + pose[:, 3]
        depth[ray_index] = camera_points[:, 2]
        face[ray_index] = face_index
        points[ray_index] = locations
    return RayHits(depth.reshape(size, size), face.reshape(size, size), points.reshape(size, size, 3), origins[0])


def barycentric(vertices: np.ndarray, faces: np.ndarray, hits: RayHits) -> np.ndarray:
    """Barycentric coordinates [P, 3] of the covered pixels' hit points in their triangles."""
    covered = hits.mask
    triangles = vertices[faces[hits.face[covered]]]
    return np.clip(trimesh.triangles.points_to_barycentric(triangles, hits.points[covered]), 0, 1)


def shade_asset(asset, hits: RayHits, background: float = 1.0, light: float = 0.0) -> np.ndarray:
    """Image [H, W, 3] in [0, 1] (sRGB) of a ``MeshAsset`` (texture, else vertex colours)
    seen in ``hits``; ``light`` in [0, 1] mixes in head-on Lambert shading."""
    height, width = hits.face.shape
    image = np.full((height, width, 3), background, dtype=np.float64)
    covered = hits.mask
    if not covered.any():
        return image
    faces = asset.faces[hits.face[covered]]
    weights = barycentric(asset.vertices, asset.faces, hits)
    if asset.textured:
        uv = np.einsum("nk,nkc->nc", weights, asset.uvs[faces])
        texture = torch.from_numpy(asset.texture).permute(2, 0, 1).float()[None] / 255.0
        grid = torch.from_numpy((uv * 2 - 1).astype(np.float32)).view(1, 1, -1, 2)
        colors = torch.nn.functional.grid_sample(texture, grid, mode="bilinear", padding_mode="border",
                                                 align_corners=False)[0, :, 0].t().numpy()
    elif asset.vertex_colors is not None:
        colors = np.einsum("nk,nkc->nc", weights, asset.vertex_colors[faces])
    else:
        colors = np.full((len(faces), 3), 0.7)
    if light > 0 and asset.normals is not None:
        normals = np.einsum("nk,nkc->nc", weights, asset.normals[faces])
        normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
        toward = hits.origin - hits.points[covered]
        toward /= np.maximum(np.linalg.norm(toward, axis=1, keepdims=True), 1e-12)
        lambert = np.abs((normals * toward).sum(1, keepdims=True))
        colors = colors * (1 - light + light * lambert)
    image[covered] = np.clip(colors, 0, 1)
    return image


#: Relative depth slack of the visibility test.
DEPTH_TOLERANCE = 0.01


class SurfaceDepth:
    """What camera ``view`` sees of ``mesh``: tells which points are visible from it."""

    def __init__(self, mesh: trimesh.Trimesh, cameras: CameraSet, view: int):
        hits = cast(mesh, cameras, view)
        depth = torch.from_numpy(np.where(np.isfinite(hits.depth), hits.depth, 1e3)).float()[None, None]
        # The nearest surface around each pixel, so points on silhouette edges count as seen.
        self.nearest = -torch.nn.functional.max_pool2d(-depth, 3, stride=1, padding=1)
        self.size = cameras.image_size

    def visible(self, pixels: torch.Tensor, depth: torch.Tensor) -> torch.Tensor:
        """pixels [P, 2] and camera depth [P] of points (``CameraSet.project``) -> [P] bool:
        on the image and not behind the surface."""
        from .views import sample_view_maps

        surface = sample_view_maps(self.nearest, pixels[None], padding="border")[0, :, 0]
        on_image = (pixels >= 0).all(1) & (pixels < self.size).all(1)
        return on_image & (depth <= surface * (1 + DEPTH_TOLERANCE))
