"""The mesh a user takes home: geometry, smooth normals, and its colour as a base-colour
texture (UV-mapped) or as vertex colours, with the colour space of each spelled out.

Assets live in SyncDreamer's object frame (z up, azimuth 0 on +x). Hosts and file formats
that expect y up (glTF, ComfyUI's 3D viewer) get ``to_y_up``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import trimesh

from ..colorspace import linear_to_srgb, srgb_to_linear

#: z-up (SyncDreamer's frame) to y-up (glTF): x stays, y <- z, z <- -y.
Z_UP_TO_Y_UP = np.array([[1, 0, 0], [0, 0, 1], [0, -1, 0]], dtype=np.float64)


class MeshAssetError(ValueError):
    """A mesh that cannot be delivered (empty, inconsistent or not finite)."""


@dataclass
class MeshAsset:
    """``vertices`` [V, 3] float32, ``faces`` [F, 3] int64, ``normals`` [V, 3] (smooth, equal
    across UV seams); ``uvs`` [V, 2] in [0, 1] with the origin at the texture's top-left (as
    glTF); ``texture`` [H, W, 3] uint8 sRGB; ``vertex_colors`` [V, 3] float32 sRGB in [0, 1].
    ``vertices``, ``normals``, ``uvs`` and ``vertex_colors`` are one row per vertex."""

    vertices: np.ndarray
    faces: np.ndarray
    normals: np.ndarray | None = None
    uvs: np.ndarray | None = None
    texture: np.ndarray | None = None
    vertex_colors: np.ndarray | None = None

    def __post_init__(self):
        self.vertices = np.ascontiguousarray(self.vertices, np.float32)
        self.faces = np.ascontiguousarray(self.faces, np.int64)
        self.check()
        if self.normals is None:
            self.normals = smooth_normals(self.vertices, self.faces)

    def check(self) -> None:
        V = len(self.vertices)
        if V == 0 or len(self.faces) == 0:
            raise MeshAssetError("the mesh is empty (no vertices or no faces): nothing to save or show")
        if self.vertices.ndim != 2 or self.vertices.shape[1] != 3 or self.faces.ndim != 2 or self.faces.shape[1] != 3:
            raise MeshAssetError(f"vertices must be [V, 3] and faces [F, 3], got {self.vertices.shape} and "
                                 f"{self.faces.shape}")
        if self.faces.min() < 0 or self.faces.max() >= V:
            raise MeshAssetError(f"face indices must be in 0..{V - 1}, got {self.faces.min()}..{self.faces.max()}")
        if not np.isfinite(self.vertices).all():
            raise MeshAssetError("the mesh has NaN or infinite vertex positions")
        for name in ("normals", "uvs", "vertex_colors"):
            value = getattr(self, name)
            if value is not None and len(value) != V:
                raise MeshAssetError(f"{name} has {len(value)} rows for {V} vertices (they must be 1:1)")
            if value is not None and not np.isfinite(value).all():
                bad = int((~np.isfinite(value)).any(axis=-1).sum())
                raise MeshAssetError(f"the mesh's {name} are NaN or infinite at {bad} of {V} vertices: the node that "
                                     "made it gave broken values; fix or drop them before saving")
        if (self.uvs is None) != (self.texture is None):
            raise MeshAssetError("a texture needs UVs and UVs need a texture")
        if self.texture is not None and (self.texture.ndim != 3 or self.texture.shape[2] != 3
                                         or self.texture.dtype != np.uint8):
            raise MeshAssetError(f"the texture must be [H, W, 3] uint8, got {self.texture.dtype} {self.texture.shape}")

    @property
    def textured(self) -> bool:
        return self.texture is not None

    def transformed(self, rotation: np.ndarray) -> MeshAsset:
        """The asset rotated by ``rotation`` [3, 3] (positions and normals)."""
        normals = None if self.normals is None else self.normals @ rotation.T
        return replace(self, vertices=self.vertices @ rotation.T, normals=normals)

    def to_y_up(self) -> MeshAsset:
        return self.transformed(Z_UP_TO_Y_UP)

    def from_y_up(self) -> MeshAsset:
        return self.transformed(Z_UP_TO_Y_UP.T)

    def to_trimesh(self) -> trimesh.Trimesh:
        """A trimesh with the asset's colour as a PBR base-colour texture or vertex colours."""
        mesh = trimesh.Trimesh(self.vertices, self.faces, vertex_normals=self.normals, process=False)
        if self.textured:
            from PIL import Image

            material = trimesh.visual.material.PBRMaterial(baseColorTexture=Image.fromarray(self.texture),
                                                           metallicFactor=0.0, roughnessFactor=1.0)
            # trimesh's UVs have their origin at the bottom-left (OBJ), glTF's at the top-left.
            uv = np.stack([self.uvs[:, 0], 1.0 - self.uvs[:, 1]], 1)
            mesh.visual = trimesh.visual.TextureVisuals(uv=uv, material=material)
        elif self.vertex_colors is not None:
            rgba = np.concatenate([np.round(self.vertex_colors * 255), np.full((len(self.vertices), 1), 255)], 1)
            mesh.visual = trimesh.visual.ColorVisuals(mesh, vertex_colors=rgba.astype(np.uint8))
        return mesh

    def linear_vertex_colors(self) -> np.ndarray | None:
        return None if self.vertex_colors is None else srgb_to_linear(self.vertex_colors)


def smooth_normals(vertices: np.ndarray, faces: np.ndarray, weld: np.ndarray | None = None) -> np.ndarray:
    """Area-weighted vertex normals [V, 3]. ``weld`` [V] maps vertices that share a
    position (UV-seam copies) to one index, so their normals agree."""
    index = np.arange(len(vertices)) if weld is None else np.asarray(weld)
    corners = vertices[faces]
    face_normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])  # length = 2 area
    accumulated = np.zeros((index.max() + 1, 3), np.float64)
    for k in range(3):
        np.add.at(accumulated, index[faces[:, k]], face_normals)
    normals = accumulated[index]
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    return (normals / np.maximum(length, 1e-12)).astype(np.float32)


def from_trimesh(mesh: trimesh.Trimesh) -> MeshAsset:
    """A vertex-coloured (or plain) trimesh as an asset."""
    colors = None
    if mesh.visual.kind == "vertex":
        colors = np.asarray(mesh.visual.vertex_colors)[:, :3].astype(np.float32) / 255.0
    return MeshAsset(np.asarray(mesh.vertices), np.asarray(mesh.faces), vertex_colors=colors)


def from_arrays(vertices: np.ndarray, faces: np.ndarray, uvs: np.ndarray | None = None,
                linear_colors: np.ndarray | None = None, texture: np.ndarray | None = None) -> MeshAsset:
    """An asset from the fields of a host MESH item (y up, vertex colours linear as glTF's
    COLOR_0, texture float sRGB in [0, 1])."""
    for name, value in (("vertex_colors", linear_colors), ("texture", texture)):
        if value is not None and not np.isfinite(value).all():
            raise MeshAssetError(f"the mesh's {name} hold NaN or infinite values: the node that made it gave broken "
                                 "colours; fix or drop them before saving")
    colors = None if linear_colors is None else linear_to_srgb(np.asarray(linear_colors)[:, :3])
    texture8 = None if texture is None else np.clip(np.round(np.asarray(texture, np.float32) * 255), 0, 255).astype(np.uint8)
    if uvs is not None and texture8 is None:
        uvs = None
    return MeshAsset(vertices, faces, uvs=uvs, texture=texture8, vertex_colors=colors).from_y_up()
