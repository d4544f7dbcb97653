"""Rendering a mesh at pinhole cameras by ray casting (trimesh, with Embree when
installed), on the CPU: depth, coverage, triangle ids and barycentric colours.

Pixel ``(row, col)`` is sampled through its centre ``(col + 0.5, row + 0.5)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import trimesh


@dataclass
class RayHits:
    """Per-pixel results of one view: ``depth`` [H, W] camera z (inf where empty),
    ``face`` [H, W] triangle index (-1 where empty), ``points`` [H, W, 3] world hits."""

    depth: np.ndarray
    face: np.ndarray
    points: np.ndarray

    @property
    def mask(self) -> np.ndarray:
        return self.face >= 0


def camera_rays(K: np.ndarray, pose: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Origins [H*W, 3] and unit directions [H*W, 3] through pixel centres, world frame."""
    rows, cols = np.mgrid[0:height, 0:width]
    pixels = np.stack([cols + 0.5, rows + 0.5, np.ones_like(cols, dtype=np.float64)], -1).reshape(-1, 3)
    camera_dirs = pixels @ np.linalg.inv(K).T
    R, t = pose[:, :3], pose[:, 3]
    directions = camera_dirs @ R  # R^T d for each row
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    origin = -R.T @ t
    return np.broadcast_to(origin, directions.shape).copy(), directions


def cast(mesh: trimesh.Trimesh, K: np.ndarray, pose: np.ndarray, height: int = 256, width: int = 256) -> RayHits:
    """First hits of the rays of one camera."""
    origins, directions = camera_rays(np.asarray(K, np.float64), np.asarray(pose, np.float64), height, width)
    locations, ray_index, face_index = mesh.ray.intersects_location(origins, directions, multiple_hits=False)
    depth = np.full(height * width, np.inf)
    face = np.full(height * width, -1, dtype=np.int64)
    points = np.zeros((height * width, 3))
    if len(ray_index):
        camera_points = locations @ np.asarray(pose)[:, :3].T + np.asarray(pose)[:, 3]
        depth[ray_index] = camera_points[:, 2]
        face[ray_index] = face_index
        points[ray_index] = locations
    return RayHits(depth.reshape(height, width), face.reshape(height, width), points.reshape(height, width, 3))


def cast_views(mesh: trimesh.Trimesh, Ks: np.ndarray, poses: np.ndarray, height: int = 256,
               width: int = 256) -> list[RayHits]:
    return [cast(mesh, Ks[i], poses[i], height, width) for i in range(len(poses))]


def shade_vertex_colors(mesh: trimesh.Trimesh, hits: RayHits, background: float = 1.0) -> np.ndarray:
    """Image [H, W, 3] in [0, 1] of the mesh's vertex colours, interpolated barycentrically."""
    height, width = hits.face.shape
    image = np.full((height, width, 3), background, dtype=np.float64)
    covered = hits.mask
    if not covered.any():
        return image
    faces = hits.face[covered]
    triangles = mesh.vertices[mesh.faces[faces]]
    weights = trimesh.triangles.points_to_barycentric(triangles, hits.points[covered])
    colors = np.asarray(mesh.visual.vertex_colors, dtype=np.float64)[:, :3] / 255.0
    image[covered] = np.einsum("nk,nkc->nc", np.clip(weights, 0, 1), colors[mesh.faces[faces]])
    return image
