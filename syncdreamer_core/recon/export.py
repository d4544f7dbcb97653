"""Writing meshes with their vertex colours."""

from __future__ import annotations

import os

import numpy as np
import trimesh

MESH_FORMATS = ("glb", "obj", "ply")
#: z-up (SyncDreamer's frame) to y-up (glTF): x stays, y <- z, z <- -y.
Z_UP_TO_Y_UP = np.array([[1, 0, 0, 0], [0, 0, 1, 0], [0, -1, 0, 0], [0, 0, 0, 1]], dtype=np.float64)


def export_mesh(mesh: trimesh.Trimesh, path: str | os.PathLike, file_format: str | None = None,
                up_axis: str = "z") -> str:
    """Write ``mesh`` (in SyncDreamer's z-up frame) as GLB/OBJ/PLY with vertex colours."""
    file_format = (file_format or str(path).rsplit(".", 1)[-1]).lower()
    if file_format not in MESH_FORMATS:
        raise ValueError(f"unknown mesh format {file_format!r}; choose one of {', '.join(MESH_FORMATS)}")
    if up_axis not in ("y", "z"):
        raise ValueError(f"up_axis must be 'y' or 'z', got {up_axis!r}")
    out = mesh.copy()
    if up_axis == "y":
        out.apply_transform(Z_UP_TO_Y_UP)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    out.export(str(path), file_type=file_format)
    return str(path)
