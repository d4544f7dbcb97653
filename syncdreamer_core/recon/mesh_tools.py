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


#: How far decimation may move the enclosed volume.
MAX_VOLUME_CHANGE = 0.02
#: A separate piece with less than this share of the largest piece's volume (or none: an open
#: sliver) is debris, not a part of the object.
DEBRIS_SHARE = 1e-3
#: Face budgets tried, as shares of the one asked for, when decimation breaks the surface.
BUDGET_SHARES = (1.0, 0.995, 0.99, 0.98, 0.97, 0.95, 0.9)


def is_solid(mesh: trimesh.Trimesh) -> bool:
    """Closed, consistently and outward wound, every edge shared by exactly two faces, no
    degenerate face: what a slicer, a boolean or a physics collider needs."""
    return bool(len(mesh.faces)) and mesh.is_watertight and mesh.is_winding_consistent and mesh.is_volume \
        and bool(mesh.nondegenerate_faces().all())


def make_solid(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    """The mesh with coincident vertices merged, degenerate and repeated faces removed,
    debris dropped (open slivers, specks) and every body wound outward."""
    mesh = mesh.copy()
    mesh.merge_vertices()
    mesh.update_faces(mesh.nondegenerate_faces())
    mesh.update_faces(mesh.unique_faces())
    mesh.remove_unreferenced_vertices()
    parts = mesh.split(only_watertight=False)
    if len(parts) > 1:
        volumes = [abs(p.volume) if p.is_watertight else 0.0 for p in parts]
        kept = [p for p, v in zip(parts, volumes, strict=True) if v > DEBRIS_SHARE * max(volumes)]
        mesh = trimesh.util.concatenate(kept or parts)
    trimesh.repair.fix_normals(mesh, multibody=True)
    return mesh


def decimate(mesh: trimesh.Trimesh, max_faces: int) -> trimesh.Trimesh:
    """Quadric edge-collapse decimation (fast-simplification) to at most ``max_faces``,
    keeping a closed mesh closed: an edge collapse now and then pinches two sheets into
    one edge or leaves a sliver, so the result is checked (closed 2-manifold, the same
    bodies, the volume within 2 %) and, when broken, redone a few faces lower."""
    max_faces = check_face_budget(max_faces, "the face budget")
    if max_faces is None or len(mesh.faces) <= max_faces:
        return mesh
    solid = is_solid(mesh)
    bodies = len(mesh.split(only_watertight=False)) if solid else 0
    best = None
    for share in BUDGET_SHARES:
        target = max(MIN_FACES, int(max_faces * share))
        simplified = mesh.simplify_quadric_decimation(face_count=target)
        if len(simplified.faces) == 0:
            raise MeshToolError(f"decimating to {max_faces} faces left nothing; raise the face budget")
        if not solid:
            return simplified
        simplified = make_solid(simplified)
        if is_solid(simplified) and len(simplified.split(only_watertight=False)) == bodies:
            if abs(simplified.volume / mesh.volume - 1) <= MAX_VOLUME_CHANGE:
                return simplified
            best = best or simplified
    if best is not None:
        return best  # closed, but the budget is too small to keep the volume: the user's choice
    raise MeshToolError(f"decimating to {max_faces} faces did not leave a closed mesh; raise the face budget")


def keep_largest_component(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    """The connected piece with the most faces."""
    parts = mesh.split(only_watertight=False)
    return mesh if len(parts) <= 1 else max(parts, key=lambda p: len(p.faces))


def close_holes(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    """Fill the holes trimesh can close (fans over simple boundary loops), in place."""
    trimesh.repair.fill_holes(mesh)
    trimesh.repair.fix_normals(mesh)
    return mesh
