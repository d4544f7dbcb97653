"""Mesh reconstruction from SyncDreamer's 16 views, on any device, no CUDA extensions,
no downloaded matting model.

- ``reconstruct_fast``: silhouette carving + marching cubes + vertex colours
  (seconds on a CPU).
- ``reconstruct_quality``: the fast hull refined by optimising a signed distance
  field against the 16 images with NeuS-style differentiable volume rendering
  (minutes on a CPU at reduced resolution, much faster on a GPU).
- ``make_asset``: the result decimated, cleaned and coloured with a texture baked from
  the views (or vertex colours), ready to export (``export``).

Meshes are in the reference's object frame: z up, object in [-0.5, 0.5]^3,
view i seen from azimuth 22.5*i degrees at elevation 30, bounding box centred
horizontally on the origin (``recentre=False`` keeps them where the views put them).

The names below load their modules (trimesh, scikit-image, ...) on first use, so
importing a light submodule such as ``recon.formats`` stays cheap.
"""

import importlib

_EXPORTS = {
    "ReconstructionResult": "pipeline", "make_asset": "pipeline", "reconstruct_fast": "pipeline",
    "reconstruct_quality": "pipeline", "ReconstructionInputError": "views", "prepare_views": "views",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
