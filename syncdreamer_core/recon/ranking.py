"""Which candidate set of 16 views is the most consistent 3D object?

SyncDreamer sometimes generates views that do not agree (a view mirrored, parts that
change between views). Two model-free checks score a set of 16 views:
- silhouette agreement: the visual hull carved from all 16 silhouettes, rendered back
  at each camera, should fill each view's own silhouette (mean IoU; an inconsistent
  view carves away what the others see);
- colour agreement: a point of the hull's surface should have the same colour in every
  view that sees it (mean spread of those colours).
Higher score = more consistent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from ..cameras import target_cameras
from .carving import visual_hull
from .coloring import visibility
from .fields import EmptyFieldError, field_to_mesh
from .raycast import cast
from .views import ReconstructionInputError, prepare_views, sample_view_maps

#: Carving grid and rendering size of the check (coarse: it compares, it does not build).
HULL_RESOLUTION = 80
RENDER_SIZE = 128
#: Surface points whose colour agreement is checked.
COLOR_SAMPLES = 4000
#: Weight of the colour spread (0..1 scale) against the silhouette IoU.
COLOR_WEIGHT = 1.0


@dataclass
class CandidateScore:
    index: int
    score: float
    silhouette_iou: float
    color_spread: float
    #: Why the candidate cannot be meshed (it is then ranked last), or None.
    unusable: str | None = None

    def describe(self) -> str:
        if self.unusable:
            return f"candidate {self.index}: unusable, ranked last ({self.unusable})"
        return (f"candidate {self.index}: score {self.score:.3f} (silhouette IoU {self.silhouette_iou:.3f}, "
                f"colour spread {self.color_spread:.3f})")


def unusable(index: int, reason: str) -> CandidateScore:
    return CandidateScore(index, float("-inf"), 0.0, 1.0, reason)


def score_views(views: np.ndarray, index: int = 0) -> CandidateScore:
    """The consistency score of one set of 16 views [16, H, W, 3|4]."""
    try:
        viewset = prepare_views(views)
    except ReconstructionInputError as error:
        return unusable(index, str(error))
    if viewset.blank:
        return unusable(index, f"views {list(viewset.blank)} are blank (all white, no object)")
    cameras = target_cameras()
    small = np.stack([np.asarray(Image.fromarray(m.astype(np.uint8) * 255).resize((RENDER_SIZE, RENDER_SIZE),
                                                                                 Image.BILINEAR)) > 127
                      for m in viewset.masks])
    hull, _ = visual_hull(viewset.masks, cameras, HULL_RESOLUTION, tolerance=0, centred_bbox=True)
    try:
        mesh = field_to_mesh(hull)
    except EmptyFieldError:
        return unusable(index, "its silhouettes carve nothing in common: the views disagree about the object")
    scaled = cameras.scaled(RENDER_SIZE)
    ious = []
    for n in range(len(cameras)):
        rendered = cast(mesh, scaled, n).mask
        union = (rendered | small[n]).sum()
        ious.append(float((rendered & small[n]).sum() / union) if union else 0.0)
    rng = np.random.default_rng(0)
    pick = rng.choice(len(mesh.vertices), size=min(COLOR_SAMPLES, len(mesh.vertices)), replace=False)
    points = torch.from_numpy(np.asarray(mesh.vertices, np.float32)[pick])
    seen = torch.from_numpy(visibility(mesh, cameras, RENDER_SIZE)[:, pick])
    pixels, _ = cameras.scaled(viewset.size).project(points)
    colours = sample_view_maps(torch.from_numpy(viewset.colors).permute(0, 3, 1, 2), pixels)  # N,P,3
    count = seen.sum(0)
    usable = count >= 2
    if usable.any():
        weights = seen[:, usable].float()[..., None]
        mean = (colours[:, usable] * weights).sum(0) / count[usable, None]
        spread = (((colours[:, usable] - mean) ** 2 * weights).sum(0) / count[usable, None]).sum(-1).sqrt()
        color_spread = float(spread.mean())
    else:
        color_spread = 1.0
    silhouette = float(np.mean(ious))
    return CandidateScore(index, silhouette - COLOR_WEIGHT * color_spread, silhouette, color_spread)


def rank_candidates(views: np.ndarray, view_count: int = 16,
                    callback: Callable[[int, int], None] | None = None) -> list[CandidateScore]:
    """Scores of every set of ``view_count`` views in ``views`` [B*16, H, W, C], best first;
    a candidate that cannot be meshed (blank views, no common shape) is ranked last with
    its reason. Raises only when no candidate is usable."""
    if len(views) == 0 or len(views) % view_count:
        raise ReconstructionInputError(f"expected sets of {view_count} views, got {len(views)} images")
    scores = []
    count = len(views) // view_count
    for b in range(count):
        scores.append(score_views(views[b * view_count:(b + 1) * view_count], b))
        if callback is not None:
            callback(b + 1, count)
    if all(s.unusable for s in scores):
        raise ReconstructionInputError("no candidate can be meshed: " + "; ".join(s.describe() for s in scores))
    return sorted(scores, key=lambda s: -s.score)
