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


class SyncDreamerEstimateElevation:
    DESCRIPTION = ("Estimates the input view's elevation from the 16 views SyncDreamer generated for it: their "
                   "silhouettes carve the object, and the elevation whose rendering best matches the input's "
                   "silhouette wins. Generate with a first guess, estimate, then generate again with the estimate.")

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "image": ("IMAGE", {"tooltip": "The prepared input (for the preview)."}),
                "object_mask": ("MASK", {"tooltip": "The prepared input's object mask (1 = object)."}),
                "views": ("IMAGE", {"tooltip": "The 16 decoded views generated for this input."}),
            },
            "optional": {
                "first_guess": ("FLOAT", {"default": 30.0, "min": -90.0, "max": 90.0, "step": 1.0,
                                          "tooltip": "Kept when the estimate is not confident enough."}),
                "min_confidence": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1.0, "step": 0.01}),
            },
        }

    RETURN_TYPES = ("FLOAT", "IMAGE", "FLOAT")
    RETURN_NAMES = ("elevation", "preview", "confidence")
    OUTPUT_TOOLTIPS = ("Elevation in degrees, ready for the sampler.",
                       "The input with the best-matching silhouette outlined in red.",
                       "0..1: how clearly this elevation beats the others.")
    FUNCTION = "estimate"
    CATEGORY = CATEGORY

    def estimate(self, image, object_mask, views, first_guess=None, min_confidence=0.0):
        import comfy.model_management as mm
        import comfy.utils

        from syncdreamer_core.elevation import ElevationError, estimate_elevation
        from syncdreamer_core.recon import ReconstructionInputError

        from .common import NodeInputError, image_batch, to_image_tensor

        image_batch(image)
        image_batch(views, "views")
        if views.shape[0] != 16:
            raise NodeInputError(f"views must be the 16 views of one candidate, got {views.shape[0]} images")
        bar = comfy.utils.ProgressBar(1)

        def progress(i, total):
            bar.update_absolute(i + 1, total)
            mm.throw_exception_if_processing_interrupted()

        try:
            result = estimate_elevation(object_mask[0].cpu().numpy(), views.cpu().numpy(), callback=progress)
        except (ElevationError, ReconstructionInputError) as error:
            raise NodeInputError(str(error)) from None
        elevation = result.elevation_deg
        if first_guess is not None and result.confidence < min_confidence:
            elevation = float(first_guess)
        preview = result.overlay(image[0].cpu().numpy())
        return (float(elevation), to_image_tensor(preview), float(result.confidence))
