"""Mesh clean-up after marching cubes, and the tools a user expects before export:
decimation to a face budget, keeping the main piece, closing holes."""

from __future__ import annotations

import numpy as np
import trimesh

#: The smallest face budget decimation accepts (below it the object falls apart).
MIN_FACES = 100


class MeshToolError(ValueError):
    """A clean-up or decimation request that cannot be met."""


def check_face_budget(max_faces, name: str = "max_faces") -> int | None:
    """A face budget: 0 or None keeps every face (None), else an integer >= ``MIN_FACES``."""
    if max_faces is None:
        return None
    whole = not isinstance(max_faces, bool) and isinstance(max_faces, (int, np.integer))
    if not whole or (max_faces != 0 and max_faces < MIN_FACES):
        raise MeshToolError(f"{name} must be 0 (keep all) or at least {MIN_FACES} faces, got {max_faces!r}")
    return int(max_faces) or None


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
    return decimate(mesh, max_faces) if max_faces else mesh


def decimate(mesh: trimesh.Trimesh, max_faces: int) -> trimesh.Trimesh:
    """Quadric edge-collapse decimation (fast-simplification) to at most ``max_faces``."""
    max_faces = check_face_budget(max_faces, "the face budget")
    if max_faces is None or len(mesh.faces) <= max_faces:
        return mesh
    simplified = mesh.simplify_quadric_decimation(face_count=int(max_faces))
    if len(simplified.faces) == 0:
        raise MeshToolError(f"decimating to {max_faces} faces left nothing; raise the face budget")
    return simplified


def keep_largest_component(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    """The connected piece with the most faces."""
    parts = mesh.split(only_watertight=False)
    return mesh if len(parts) <= 1 else max(parts, key=lambda p: len(p.faces))


def close_holes(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    """Fill the holes trimesh can close (fans over simple boundary loops), in place."""
    trimesh.repair.fill_holes(mesh)
    trimesh.repair.fix_normals(mesh)
    return mesh
