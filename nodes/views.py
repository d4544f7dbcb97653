"""Splitting, composing and selecting the 16 views, and picking a candidate."""

from __future__ import annotations

import logging

from comfy_api.latest import io

from syncdreamer_core.constants import VIEW_COUNT

from .common import CATEGORY, NodeInputError, core_errors, image_batch, schema, whole_number

LAYOUT_TOOLTIP = ("strip: 1x16 side by side, as the reference writes its output (view i at columns 256 i..256 i+255); "
                  "grid: 4x4, views in rows of four.")


def note_unlike_views(views, node: str, name: str) -> None:
    """Where views enter that do not look like SyncDreamer's, say so on the node and in the log
    (they pass: an untrained or odd model's views are worth seeing; Reconstruct Mesh refuses
    what it cannot mesh)."""
    from syncdreamer_core.layout import unlike_views

    from .host import progress_text

    unlike = unlike_views(views)
    if unlike:
        logging.warning("%s: %s: %s", node, name, unlike)
        progress_text(f"Note: {name}: {unlike}")


class SyncDreamerSplitViews(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return schema(
            node_id="SyncDreamerSplitViews",
            display_name="SyncDreamer Split Views",
            category=CATEGORY,
            search_aliases=["split strip", "split grid", "views from image"],
            description="Splits 1x16 strips (as the reference writes them) or 4x4 grids into 16 views each.",
            inputs=[
                io.Image.Input("image", tooltip="Strips (width = 16 x height) or 4x4 grids of views."),
                io.Combo.Input("layout", options=["auto", "strip", "grid"], default="auto",
                               tooltip="auto: strip or grid from the aspect ratio. " + LAYOUT_TOOLTIP),
            ],
            outputs=[io.Image.Output("views", display_name="views", tooltip="16 views per input image, in camera order.")],
        )

    @classmethod
    def execute(cls, image, layout="auto"):
        from syncdreamer_core.layout import detect_layout, split_grid, split_strip

        image_batch(image)
        if layout == "auto":
            layout = core_errors(detect_layout, image)
        views = core_errors(split_strip if layout == "strip" else split_grid, image)
        note_unlike_views(views, "SyncDreamer Split Views", "image")
        return io.NodeOutput(views)


class SyncDreamerComposeViews(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return schema(
            node_id="SyncDreamerComposeViews",
            display_name="SyncDreamer Compose Views",
            category=CATEGORY,
            search_aliases=["views to grid", "views to strip", "contact sheet"],
            description="Arranges each set of 16 views as a 1x16 strip or a 4x4 grid (one image per set).",
            inputs=[
                io.Image.Input("views", tooltip="Sets of 16 views (e.g. VAE Decode of the sampler's LATENT)."),
                io.Combo.Input("layout", options=["grid", "strip"], default="grid", tooltip=LAYOUT_TOOLTIP),
            ],
            outputs=[io.Image.Output("IMAGE", display_name="IMAGE", tooltip="One strip or grid per set of 16 views.")],
        )

    @classmethod
    def execute(cls, views, layout="grid"):
        from syncdreamer_core.layout import compose_grid, compose_strip

        image_batch(views, "views")
        composed = core_errors(compose_strip if layout == "strip" else compose_grid, views)
        note_unlike_views(views, "SyncDreamer Compose Views", "views")
        return io.NodeOutput(composed)


class SyncDreamerSelectViews(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return schema(
            node_id="SyncDreamerSelectViews",
            display_name="SyncDreamer Select Views",
            category=CATEGORY,
            search_aliases=["pick views", "view subset"],
            description="Keeps the given camera indices (0..15, view i = azimuth 22.5 x i) of every set of 16 views.",
            inputs=[
                io.Image.Input("views", tooltip="Sets of 16 views."),
                io.String.Input("indices", default="0,4,8,12", tooltip=(
                    "Camera indices 0..15: a list like '0,4,8,12' and/or ranges like '0-3'.")),
            ],
            outputs=[io.Image.Output("IMAGE", display_name="IMAGE", tooltip="The chosen views of every set.")],
        )

    @classmethod
    def execute(cls, views, indices):
        from syncdreamer_core.layout import parse_indices, select

        image_batch(views, "views")
        return io.NodeOutput(core_errors(select, views, core_errors(parse_indices, indices)))


class SyncDreamerPickCandidate(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return schema(
            node_id="SyncDreamerPickCandidate",
            display_name="SyncDreamer Pick Candidate",
            category=CATEGORY,
            search_aliases=["choose candidate", "select candidate"],
            description="Takes the 16 views of one candidate (instance) out of a batch of several.",
            inputs=[
                io.Image.Input("views", tooltip="Several sets of 16 views, e.g. from a sampler with batch_size > 1."),
                io.Int.Input("candidate", default=0, min=0, max=63, tooltip="Which set: 0 is the first."),
            ],
            outputs=[io.Image.Output("candidate_views", display_name="views", tooltip="The 16 views of that candidate.")],
        )

    @classmethod
    def execute(cls, views, candidate):
        image_batch(views, "views")
        if views.shape[0] % VIEW_COUNT:
            raise NodeInputError(f"views must hold sets of {VIEW_COUNT} images, got {views.shape[0]}")
        count = views.shape[0] // VIEW_COUNT
        candidate = whole_number(candidate, "candidate", 0, 63)
        if candidate >= count:
            raise NodeInputError(f"candidate {candidate} does not exist: the batch holds {count} (0..{count - 1})")
        return io.NodeOutput(views[candidate * VIEW_COUNT:(candidate + 1) * VIEW_COUNT])
