"""A base-colour texture for the reconstructed mesh, baked from the 16 views.

The mesh is cut into charts and packed into a square atlas by xatlas. Every texel that
a triangle covers gets its surface point and normal; the point is projected into each
view, and the views that see it (depth test against the mesh rendered from that view,
inside the view's silhouette) give it their colour, weighted by how squarely they face
the surface and by the distance to the silhouette edge, where the white background
bleeds in. Colours are blended in linear light and stored as sRGB, as glTF's
baseColorTexture expects. Texels no view sees (the underside) take the colour of the
nearest seen surface point; the empty atlas space around each chart takes the colour of
the nearest chart texel, so filtering never pulls in background.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import trimesh
from scipy import ndimage
from scipy.spatial import cKDTree

from ..cameras import CameraSet
from ..colorspace import linear_to_srgb, srgb_to_linear
from .asset import MeshAsset, smooth_normals
from .raycast import SurfaceDepth
from .views import ViewSet, sample_view_maps

#: Texture sizes offered (powers of two: mipmapping and every GPU like them).
TEXTURE_SIZES = (256, 512, 1024, 2048, 4096)
#: Sharpness of the head-on preference: weight = cos(view, normal) ** power.
VIEW_WEIGHT_POWER = 4.0
#: Views are trusted fully this many pixels inside their silhouette, less towards the edge.
EDGE_FEATHER_PX = 2.0
#: Gutter between charts in the atlas, in texels.
ATLAS_PADDING = 2
#: Texels processed at once when sampling the views.
TEXEL_CHUNK = 262_144


class TextureError(ValueError):
    """A texture that cannot be baked (bad size, empty mesh, nothing seen)."""


def check_texture_size(size) -> int:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or int(size) not in TEXTURE_SIZES:
        raise TextureError(f"texture size must be a power of two from {TEXTURE_SIZES[0]} to {TEXTURE_SIZES[-1]}, "
                           f"got {size!r}")
    return int(size)


@dataclass
class Atlas:
    """The unwrapped mesh: ``vertices`` [V', 3] (seam vertices duplicated), ``faces`` [F, 3],
    ``uvs`` [V', 2] in [0, 1] (origin top-left), ``source`` [V'] original vertex of each."""

    vertices: np.ndarray
    faces: np.ndarray
    uvs: np.ndarray
    source: np.ndarray


def unwrapper_available() -> bool:
    """Whether xatlas (the UV unwrapper) is installed. It has no wheel for ARM Linux, where
    the pack installs without it; a texture asked for there becomes vertex colours, and
    the user is told once how to get textures."""
    try:
        import xatlas  # noqa: F401
    except ImportError:
        global _TOLD
        if not _TOLD:
            _TOLD = True
            logging.getLogger("syncdreamer").warning(
                "SyncDreamer: xatlas (the UV unwrapper) is not installed, so meshes get vertex colours instead of a "
                "texture. It has no wheel for this machine; `pip install xatlas` builds it (needs a C++ compiler and "
                "cmake).")
        return False
    return True


_TOLD = False


def unwrap(mesh: trimesh.Trimesh, size: int) -> Atlas:
    """Charts and packing by xatlas for a ``size`` x ``size`` texture."""
    import xatlas

    vertices = np.asarray(mesh.vertices, np.float32)
    atlas = xatlas.Atlas()
    atlas.add_mesh(vertices, np.asarray(mesh.faces, np.uint32))
    pack = xatlas.PackOptions()
    pack.resolution = size
    pack.padding = ATLAS_PADDING
    pack.bilinear = True
    atlas.generate(xatlas.ChartOptions(), pack)
    source, faces, uvs = atlas[0]
    return Atlas(vertices[source], faces.astype(np.int64), uvs.astype(np.float32), source.astype(np.int64))


def rasterize(uvs: np.ndarray, faces: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The texels whose centres each triangle covers in UV space: flat texel index [T],
    face [T], barycentric coordinates [T, 3]."""
    corners = uvs[faces] * size  # F,3,2 in texel units
    low = np.clip(np.floor(corners.min(1) - 0.5).astype(np.int64), 0, size - 1)
    high = np.clip(np.ceil(corners.max(1) - 0.5).astype(np.int64), 0, size - 1)
    extent = high - low + 1
    counts = extent[:, 0] * extent[:, 1]
    face = np.repeat(np.arange(len(faces)), counts)
    offset = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    x = low[face, 0] + offset % extent[face, 0]
    y = low[face, 1] + offset // extent[face, 0]
    a, b, c = corners[face, 0], corners[face, 1], corners[face, 2]
    p = np.stack([x + 0.5, y + 0.5], 1)
    v0, v1, v2 = b - a, c - a, p - a
    denominator = v0[:, 0] * v1[:, 1] - v1[:, 0] * v0[:, 1]
    safe = np.where(np.abs(denominator) > 1e-12, denominator, 1.0)
    w1 = (v2[:, 0] * v1[:, 1] - v1[:, 0] * v2[:, 1]) / safe
    w2 = (v0[:, 0] * v2[:, 1] - v2[:, 0] * v0[:, 1]) / safe
    w0 = 1 - w1 - w2
    inside = (np.abs(denominator) > 1e-12) & (w0 >= -1e-6) & (w1 >= -1e-6) & (w2 >= -1e-6)
    texel = y[inside] * size + x[inside]
    bary = np.stack([w0, w1, w2], 1)[inside]
    # A texel centre on a shared edge belongs to one triangle only.
    texel, first = np.unique(texel, return_index=True)
    return texel, face[inside][first], bary[first].astype(np.float32)


def _view_weights(points: np.ndarray, normals: np.ndarray, views: ViewSet, cameras: CameraSet,
                  per_view: Callable[[], None] | None, mesh: trimesh.Trimesh):
    """Colours [N, P, 3] (linear) the views see at ``points`` and their weights [N, P]."""
    size = views.size
    cameras = cameras.scaled(size)
    pts = torch.from_numpy(points.astype(np.float32))
    nrm = torch.from_numpy(normals.astype(np.float32))
    pixels, depth = cameras.project(pts)
    linear = torch.from_numpy(srgb_to_linear(views.colors)).permute(0, 3, 1, 2)
    inside_px = np.stack([ndimage.distance_transform_edt(m) for m in views.masks]).astype(np.float32)
    inside_px = torch.from_numpy(inside_px)[:, None]
    centres = cameras.centers().float()
    colours = torch.zeros(len(cameras), len(points), 3)
    weights = torch.zeros(len(cameras), len(points))
    for n in range(len(cameras)):
        if per_view is not None:
            per_view()
        surface = SurfaceDepth(mesh, cameras, n)
        for chunk in range(0, len(points), TEXEL_CHUNK):
            rows = slice(chunk, chunk + TEXEL_CHUNK)
            px = pixels[n:n + 1, rows]
            visible = surface.visible(px[0], depth[n, rows])
            edge = (sample_view_maps(inside_px[n:n + 1], px, padding="zeros")[0, :, 0] / EDGE_FEATHER_PX).clamp(0, 1)
            facing = torch.nn.functional.normalize(centres[n] - pts[rows], dim=-1)
            cosine = (facing * nrm[rows]).sum(-1).clamp(min=0)
            weights[n, rows] = cosine**VIEW_WEIGHT_POWER * edge * visible
            colours[n, rows] = sample_view_maps(linear[n:n + 1], px)[0]
    return colours, weights


def bake_texture(mesh: trimesh.Trimesh, views: ViewSet, cameras: CameraSet, size: int = 1024,
                 callback: Callable[[int, int], None] | None = None, atlas: Atlas | None = None) -> MeshAsset:
    """Unwrap ``mesh`` (in the views' frame; or take its ``atlas``) and bake a ``size``^2
    texture from ``views``. ``callback(done, total)`` is called per step (raise to stop)."""
    size = check_texture_size(size)
    if len(mesh.faces) == 0:
        raise TextureError("the mesh has no faces to texture")
    total, done = len(cameras) + 2, [0]

    def tick(*_):
        done[0] += 1
        if callback is not None:
            callback(done[0], total)

    atlas = atlas or unwrap(mesh, size)
    tick()
    weld_normals = smooth_normals(np.asarray(mesh.vertices, np.float32), np.asarray(mesh.faces))
    normals = weld_normals[atlas.source]
    texel, face, bary = rasterize(atlas.uvs, atlas.faces, size)
    corners = atlas.faces[face]
    points = np.einsum("tk,tkc->tc", bary, atlas.vertices[corners])
    texel_normals = np.einsum("tk,tkc->tc", bary, normals[corners])
    texel_normals /= np.maximum(np.linalg.norm(texel_normals, axis=1, keepdims=True), 1e-12)
    colours, weights = _view_weights(points, texel_normals, views, cameras, tick, mesh)
    total_weight = weights.sum(0)
    seen = (total_weight > 1e-6).numpy()
    if not seen.any():
        raise TextureError("no view sees the mesh: the views and the mesh do not line up")
    blended = ((colours * weights[..., None]).sum(0) / total_weight.clamp(min=1e-12)[:, None]).numpy()
    if not seen.all():
        # What no view sees takes the colour of the nearest seen surface point.
        _, nearest = cKDTree(points[seen], balanced_tree=False, compact_nodes=False).query(points[~seen])
        blended[~seen] = blended[seen][nearest]
    image = np.zeros((size * size, 3), np.float32)
    covered = np.zeros(size * size, bool)
    image[texel] = blended
    covered[texel] = True
    image, covered = image.reshape(size, size, 3), covered.reshape(size, size)
    _, (rows, cols) = ndimage.distance_transform_edt(~covered, return_indices=True)
    image = image[rows, cols]
    tick()
    texture = np.clip(np.round(linear_to_srgb(image) * 255), 0, 255).astype(np.uint8)
    return MeshAsset(atlas.vertices, atlas.faces, normals=normals, uvs=atlas.uvs, texture=texture)
