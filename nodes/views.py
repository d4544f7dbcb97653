"""Splitting, composing and selecting the 16 views."""

from __future__ import annotations

from syncdreamer_core.layout import (
    ViewLayoutError,
    compose_grid,
    compose_strip,
    detect_layout,
    parse_indices,
    select,
    split_grid,
    split_strip,
)

from syncdreamer_core.constants import VIEW_COUNT

from .common import CATEGORY, NodeInputError, image_batch


def _guard(function, *args):
    try:
        return function(*args)
    except ViewLayoutError as error:
        raise NodeInputError(str(error)) from None


class SyncDreamerSplitViews:
    DESCRIPTION = "Splits 1x16 strips (as the reference writes them) or 4x4 grids into 16 views each."

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",),
                             "layout": (["auto", "strip", "grid"], {"default": "auto"})}}

    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("views",)
    FUNCTION = "split"
    CATEGORY = CATEGORY

    def split(self, image, layout="auto"):
        image_batch(image)
        if layout == "auto":
            layout = _guard(detect_layout, image)
        return (_guard(split_strip if layout == "strip" else split_grid, image),)


class SyncDreamerComposeViews:
    DESCRIPTION = "Arranges each set of 16 views as a 1x16 strip or a 4x4 grid (one image per set)."

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"views": ("IMAGE",),
                             "layout": (["grid", "strip"], {"default": "grid"})}}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "compose"
    CATEGORY = CATEGORY

    def compose(self, views, layout="grid"):
        image_batch(views, "views")
        return (_guard(compose_strip if layout == "strip" else compose_grid, views),)


class SyncDreamerSelectViews:
    DESCRIPTION = "Keeps the given camera indices (0..15, view i = azimuth 22.5*i) of every set of 16 views."

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"views": ("IMAGE",),
                             "indices": ("STRING", {"default": "0,4,8,12", "tooltip": "e.g. '0,4,8,12' or '0-3'"})}}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "select"
    CATEGORY = CATEGORY

    def select(self, views, indices):
        image_batch(views, "views")
        return (_guard(select, views, _guard(parse_indices, indices)),)


class SyncDreamerPickCandidate:
    DESCRIPTION = "Takes the 16 views of one candidate (instance) out of a batch of several."

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"views": ("IMAGE",),
                             "candidate": ("INT", {"default": 0, "min": 0, "max": 63})}}

    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("views",)
    FUNCTION = "pick"
    CATEGORY = CATEGORY

    def pick(self, views, candidate):
        image_batch(views, "views")
        if views.shape[0] % VIEW_COUNT:
            raise NodeInputError(f"views must hold sets of {VIEW_COUNT} images, got {views.shape[0]}")
        count = views.shape[0] // VIEW_COUNT
        if not 0 <= candidate < count:
            raise NodeInputError(f"candidate {candidate} does not exist: the batch holds {count} (0..{count - 1})")
        return (views[candidate * VIEW_COUNT:(candidate + 1) * VIEW_COUNT],)
