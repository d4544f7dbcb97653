"""Vertex colours from the 16 views, with visibility.

A vertex takes its colour from the views that see it: its projection must fall on
the object and no other part of the mesh may be in front of it (depth test
against the mesh rendered from that view). Views are blended with weights that
favour looking at the surface head-on.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import trimesh

from ..cameras import CameraSet
from .raycast import SurfaceDepth
from .views import sample_view_maps

#: Sharpness of the head-on preference (cosine to this power).
VIEW_WEIGHT_POWER = 4.0


def visibility(mesh: trimesh.Trimesh, cameras: CameraSet, image_size: int,
               per_view: Callable[[], None] | None = None) -> np.ndarray:
    """[N, V] bool: vertex v is seen unoccluded by view n."""
    vertices = torch.from_numpy(np.asarray(mesh.vertices, np.float32))
    cameras = cameras.scaled(image_size)
    pixels, depth = cameras.project(vertices)
    visible = []
    for n in range(len(cameras)):
        if per_view is not None:
            per_view()
        visible.append(SurfaceDepth(mesh, cameras, n).visible(pixels[n], depth[n]).numpy())
    return np.stack(visible)


def vertex_colors(mesh: trimesh.Trimesh, colors: np.ndarray, masks: np.ndarray, cameras: CameraSet,
                  per_view: Callable[[], None] | None = None) -> np.ndarray:
    """[V, 3] float colours in [0, 1] for the mesh vertices."""
    size = colors.shape[1]
    vertices = torch.from_numpy(np.asarray(mesh.vertices, np.float32))
    normals = torch.from_numpy(np.asarray(mesh.vertex_normals, np.float32))
    pixels, _ = cameras.scaled(size).project(vertices)
    images = torch.from_numpy(colors).permute(0, 3, 1, 2).float()
    sampled = sample_view_maps(images, pixels)  # N,V,3
    on_mask = sample_view_maps(torch.from_numpy(masks).float()[:, None], pixels)[..., 0] > 0.5
    to_camera = cameras.centers().float()[:, None, :] - vertices[None]
    cosine = (torch.nn.functional.normalize(to_camera, dim=-1) * normals[None]).sum(-1).clamp(min=0)
    seen = torch.from_numpy(visibility(mesh, cameras, size, per_view)) & on_mask
    weights = cosine**VIEW_WEIGHT_POWER * seen
    # Vertices no view sees (e.g. under the object) fall back to any view that faces them at all.
    fallback = weights.sum(0) <= 1e-8
    if fallback.any():
        weights[:, fallback] = (cosine[:, fallback] + 1e-3) * on_mask[:, fallback].float() + 1e-6
    blended = (sampled * weights[..., None]).sum(0) / weights.sum(0)[:, None]
    return blended.clamp(0, 1).numpy()


def paint(mesh: trimesh.Trimesh, rgb: np.ndarray) -> trimesh.Trimesh:
    rgba = np.concatenate([np.round(rgb * 255), np.full((len(rgb), 1), 255)], 1).astype(np.uint8)
    mesh.visual = trimesh.visual.ColorVisuals(mesh, vertex_colors=rgba)
    return mesh
