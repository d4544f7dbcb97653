"""Elevation of the input view, in degrees."""

from __future__ import annotations

from .common import CATEGORY


class SyncDreamerElevation:
    DESCRIPTION = ("The input view's elevation in degrees (camera above the object = positive). A rough value in "
                   "[-10, 40] is enough, e.g. 0/10/20/30; a wrong one bends every generated view.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"degrees": ("FLOAT", {"default": 30.0, "min": -90.0, "max": 90.0, "step": 1.0})}}

    RETURN_TYPES = ("FLOAT",)
    RETURN_NAMES = ("elevation",)
    FUNCTION = "elevation"
    CATEGORY = CATEGORY

    def elevation(self, degrees: float):
        return (float(degrees),)
