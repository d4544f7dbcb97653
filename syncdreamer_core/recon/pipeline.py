"""The two reconstruction paths end to end: views -> coloured mesh -> the asset a user
takes home (textured or vertex-coloured, decimated, cleaned)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import trimesh

from ..cameras import CameraSet, target_cameras
from .asset import MeshAsset, from_trimesh
from .carving import POINT_CHUNK, visual_hull
from .coloring import paint, vertex_colors
from .fields import DEFAULT_BOUND, VolumeGrid, field_to_mesh, resample_grid
from .mesh_tools import (
    check_face_budget,
    clean_mesh,
    close_holes,
    decimate,
    is_solid,
    keep_largest_component,
    make_solid,
)
from .neus import RefineSettings, refine_sdf
from .views import ViewSet, prepare_views

#: Called with (units done, total units); raise from it to stop.
Progress = Callable[[int, int], None]


class Ticker:
    """Counts units of work across the phases of a reconstruction and reports them."""

    def __init__(self, total: int, callback: Progress | None):
        self.total, self.done, self.callback = total, 0, callback

    def __call__(self, *_args) -> None:
        self.done += 1
        if self.callback is not None:
            self.callback(min(self.done, self.total), self.total)


@dataclass
class ReconstructionResult:
    mesh: trimesh.Trimesh
    views: ViewSet
    trusted_views: list[int]
    seconds: float
    #: Translation applied to centre the mesh (subtract it to line the mesh up with the views).
    recentring: np.ndarray


def _finish(field, views: ViewSet, cameras: CameraSet, smooth_iterations: int, max_faces: int | None,
            color: bool, recentre: bool, tick: Ticker | None = None) -> tuple[trimesh.Trimesh, np.ndarray]:
    mesh = clean_mesh(field_to_mesh(field), smooth_iterations=smooth_iterations, max_faces=max_faces)
    if color:
        paint(mesh, vertex_colors(mesh, views.colors, views.masks, cameras, tick))
    offset = recentring_offset(mesh) if recentre else np.zeros(3)
    mesh.apply_translation(offset)
    return mesh, offset


def recentring_offset(mesh: trimesh.Trimesh) -> np.ndarray:
    """The horizontal shift that puts the mesh's bounding-box centre on the z axis.

    SyncDreamer's training objects have their bounding box centred on the origin; the
    generated views drift from that by a pixel or so (a few millimetres on the unit
    object), which this undoes. Height is left alone: the underside is never seen, and
    the hull already mirrors the top about the origin.
    """
    centre = mesh.bounds.mean(0)
    return np.array([-centre[0], -centre[1], 0.0])


def reconstruct_fast(views: np.ndarray, masks: np.ndarray | None = None, resolution: int = 128,
                     vote_tolerance: int = 2, smooth_iterations: int = 10, max_faces: int | None = None,
                     color: bool = True, centred_bbox: bool = True, recentre: bool = True,
                     callback: Progress | None = None, return_details: bool = False):
    """16 views [16, H, W, 3|4] -> coloured trimesh in the object frame (seconds on a CPU).

    ``vote_tolerance``: how many views may disagree with the others (bad masks) and be
    left out of the carving. ``recentre``: centre the result horizontally (see
    ``recentring_offset``). ``callback(done, total)`` reports carving chunks and coloured
    views (raise from it to stop).
    """
    started = time.perf_counter()
    viewset = prepare_views(views, masks)
    viewset.check_carvable(vote_tolerance)
    cameras = target_cameras()
    carving_passes = 2 if vote_tolerance > 0 else 1  # the vote, then the hull
    tick = Ticker(carving_passes * math.ceil(resolution**3 / POINT_CHUNK) + (len(cameras) if color else 0), callback)
    hull, trusted = visual_hull(viewset.masks, cameras, resolution, DEFAULT_BOUND, vote_tolerance, centred_bbox, tick)
    mesh, offset = _finish(hull, viewset, cameras, smooth_iterations, max_faces, color, recentre, tick)
    result = ReconstructionResult(mesh, viewset, trusted, time.perf_counter() - started, offset)
    return result if return_details else mesh


def reconstruct_quality(views: np.ndarray, masks: np.ndarray | None = None, steps: int = 800,
                        resolution: int = 96, mesh_resolution: int = 192, vote_tolerance: int = 2,
                        smooth_iterations: int = 5, max_faces: int | None = None, color: bool = True,
                        centred_bbox: bool = True, recentre: bool = True, seed: int = 0, device: str = "cpu",
                        callback: Progress | None = None, return_details: bool = False):
    """The fast hull refined by NeuS-style SDF optimisation (minutes on a CPU).

    ``steps``/``resolution`` trade time for detail; ``callback(i, total)`` is called every
    iteration (raise from it to stop). ``device``: where the optimisation runs (e.g. "cuda").
    """
    started = time.perf_counter()
    viewset = prepare_views(views, masks)
    viewset.check_carvable(vote_tolerance)
    cameras = target_cameras()
    hull, trusted = visual_hull(viewset.masks, cameras, 128, DEFAULT_BOUND, vote_tolerance, centred_bbox)
    trusted_set = set(trusted)
    keep = np.array([i in trusted_set for i in range(len(viewset.masks))])
    settings = RefineSettings(steps=steps, resolution=resolution, seed=seed)
    refined = refine_sdf(hull, viewset.colors[keep], viewset.masks[keep], cameras.subset(np.nonzero(keep)[0]),
                         settings, DEFAULT_BOUND, callback, device)
    spacing = 2 * DEFAULT_BOUND / (mesh_resolution - 1)
    # Keep what no camera could observe (under the object) as the hull had it.
    fine = np.minimum(resample_grid(refined.values, mesh_resolution), resample_grid(hull.values, mesh_resolution) + 2 * spacing)
    field = VolumeGrid(fine, -DEFAULT_BOUND, spacing)
    mesh, offset = _finish(field, viewset, cameras, smooth_iterations, max_faces, color, recentre)
    result = ReconstructionResult(mesh, viewset, trusted, time.perf_counter() - started, offset)
    return result if return_details else mesh


def make_asset(result: ReconstructionResult, texture_size: int | None = 1024, max_faces: int | None = None,
               cleanup: bool = False, callback: Progress | None = None) -> MeshAsset:
    """The reconstruction as a deliverable asset: optionally cleaned (largest piece, holes
    closed) and decimated to ``max_faces``, then coloured from the views: a baked
    ``texture_size``^2 texture, or vertex colours when ``texture_size`` is None."""
    from .texture import bake_texture, check_texture_size, unwrapper_available

    if texture_size is not None:
        check_texture_size(texture_size)
        if not unwrapper_available():
            texture_size = None  # said once by unwrapper_available: vertex colours instead
    max_faces = check_face_budget(max_faces)
    cameras = target_cameras()
    # Colour in the frame the views were rendered in; move the result back afterwards.
    mesh = result.mesh.copy()
    mesh.apply_translation(-np.asarray(result.recentring))
    if cleanup:
        mesh = close_holes(keep_largest_component(mesh))
    if max_faces:
        mesh = decimate(mesh, max_faces)
    if not is_solid(mesh):
        mesh = make_solid(mesh)  # debris and open slivers out, every body wound outward
    if texture_size is None:
        tick = Ticker(len(cameras), callback)
        asset = from_trimesh(paint(mesh, vertex_colors(mesh, result.views.colors, result.views.masks, cameras, tick)))
    else:
        asset = bake_texture(mesh, result.views, cameras, texture_size, callback)
    asset.vertices = asset.vertices + np.asarray(result.recentring, np.float32)
    return asset
