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
"""

from .pipeline import ReconstructionResult, make_asset, reconstruct_fast, reconstruct_quality
from .views import ReconstructionInputError, prepare_views

__all__ = ["ReconstructionInputError", "ReconstructionResult", "make_asset", "prepare_views", "reconstruct_fast",
           "reconstruct_quality"]
