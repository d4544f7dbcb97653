"""Elevation of the input view, in degrees: given, or estimated from the generated views."""

from __future__ import annotations

from comfy_api.latest import io

from syncdreamer_core import defaults

from .common import (
    CATEGORY,
    NodeInputError,
    core_errors,
    finite_number,
    image_batch,
    mask_batch,
    progress,
    schema,
    to_image,
    to_numpy,
)

#: Confidence below which Estimate Elevation keeps the first guess.


class SyncDreamerElevation(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return schema(
            node_id="SyncDreamerElevation",
            display_name="SyncDreamer Elevation",
            category=CATEGORY,
            search_aliases=["camera elevation", "view angle", "input elevation"],
            description=("The input view's elevation in degrees (camera above the object = positive), as a wireable "
                         "FLOAT. A rough value in [-10, 40] is enough, e.g. 0/10/20/30; a wrong one bends every "
                         "generated view."),
            inputs=[io.Float.Input("degrees", default=defaults.ELEVATION_DEG, min=-90.0, max=90.0, step=1.0, tooltip=(
                "Elevation of the camera that took the input, in degrees: 0 = level with the object, 30 = looking "
                "down at it like SyncDreamer's own views."))],
            outputs=[io.Float.Output("elevation", display_name="elevation", tooltip="Degrees, for the sampler.")],
        )

    @classmethod
    def execute(cls, degrees: float) -> io.NodeOutput:
        return io.NodeOutput(finite_number(degrees, "degrees", -90.0, 90.0))


class SyncDreamerEstimateElevation(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return schema(
            node_id="SyncDreamerEstimateElevation",
            display_name="SyncDreamer Estimate Elevation",
            category=CATEGORY,
            search_aliases=["estimate elevation", "camera angle", "elevation refinement"],
            description=("Estimates the input view's elevation from the 16 views SyncDreamer generated for it: their "
                         "silhouettes carve the object, and the elevation whose rendering best matches the input's "
                         "silhouette wins. Generate with a first guess, estimate, then generate again with the "
                         "estimate. One input image at a time."),
            inputs=[
                io.Image.Input("image", tooltip="The prepared input (for the preview)."),
                io.Mask.Input("object_mask", tooltip="The prepared input's object mask (1 = object): Prepare Image's "
                              "object_mask output."),
                io.Image.Input("views", tooltip="The 16 decoded views generated for this input (one set)."),
                io.Float.Input("first_guess", default=defaults.ELEVATION_DEG, min=-90.0, max=90.0, step=1.0,
                               optional=True, tooltip="The elevation the views were generated with; kept when the "
                               "estimate is not confident enough."),
                io.Float.Input("min_confidence", default=defaults.ELEVATION_MIN_CONFIDENCE, min=0.0, max=1.0, step=0.01,
                               optional=True, tooltip=(
                                   "Below this confidence the first guess is kept. 0 accepts any estimate; a clear "
                                   "silhouette match scores 0.5 or more.")),
            ],
            outputs=[
                io.Float.Output("elevation", display_name="elevation", tooltip="Elevation in degrees, ready for the sampler."),
                io.Image.Output("preview", display_name="preview",
                                tooltip="The input with the best-matching silhouette outlined in red."),
                io.Float.Output("confidence", display_name="confidence",
                                tooltip="0..1: how clearly this elevation beats the others."),
            ],
        )

    @classmethod
    def execute(cls, image, object_mask, views, first_guess: float = defaults.ELEVATION_DEG,
                min_confidence: float = defaults.ELEVATION_MIN_CONFIDENCE) -> io.NodeOutput:
        from syncdreamer_core.elevation import estimate_elevation

        image_batch(image)
        image_batch(views, "views")
        object_mask = mask_batch(object_mask, "object_mask", image.shape[1], image.shape[2])
        if image.shape[0] != 1 or object_mask.shape[0] != 1:
            raise NodeInputError(
                f"Estimate Elevation works on one input at a time, got {image.shape[0]} images and "
                f"{object_mask.shape[0]} masks: pick one with ImageFromBatch (and its 16 views with "
                "'SyncDreamer Pick Candidate')")
        if views.shape[0] != 16:
            raise NodeInputError(f"views must be the 16 views of one candidate, got {views.shape[0]} images; use "
                                 "'SyncDreamer Pick Candidate' to take one set out of a batch")
        first_guess = finite_number(first_guess, "first_guess", -90.0, 90.0)
        min_confidence = finite_number(min_confidence, "min_confidence", 0.0, 1.0)
        result = core_errors(estimate_elevation, to_numpy(object_mask[0]), to_numpy(views), callback=progress(1))
        elevation = result.elevation_deg if result.confidence >= min_confidence else first_guess
        preview = result.overlay(to_numpy(image[0]))
        return io.NodeOutput(float(elevation), to_image(preview), float(result.confidence))
