"""Mesh clean-up after marching cubes: floating pieces, smoothing, decimation."""

from __future__ import annotations

import numpy as np
import trimesh


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
