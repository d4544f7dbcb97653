"""Rendering a mesh at pinhole cameras by ray casting (trimesh, with Embree when
installed), on the CPU: depth, coverage, triangle ids, and colours from vertex colours
or a texture.

Pixel ``(row, col)`` is sampled through its centre ``(col + 0.5, row + 0.5)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import trimesh

from ..cameras import CameraSet


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
    origins, directions = (t.numpy() for t in cameras.pixel_rays(view))
    size = cameras.image_size
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
        size_y, size_x = asset.texture.shape[:2]
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
