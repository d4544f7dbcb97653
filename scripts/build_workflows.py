"""Writes the shipped workflows: example_workflows/<name>.json (UI format, loaded as
templates by ComfyUI), example_workflows/api/<name>.json (API format, for POST /prompt)
and example_workflows/<name>.jpg (a diagram of the graph as thumbnail).

    python scripts/build_workflows.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from workflow_tools import ROOT, Graph, Node, build_ui, draw_diagram, node_definitions, ui_to_api, validate_ui  # noqa: E402

OUT = ROOT / "example_workflows"
CKPT = "syncdreamer-pretrain.ckpt"
SD15 = "v1-5-pruned-emaonly-fp16.safetensors"
TEAPOT = "syncdreamer_teapot.png"
SKETCH = "syncdreamer_sketch_mug.png"

MODELS_NOTE = (
    "## Models\n"
    f"- **{CKPT}** (SyncDreamer, linked from github.com/liuyuan-pal/SyncDreamer) in `ComfyUI/models/syncdreamer/`. "
    "It carries its own VAE and CLIP image encoder.\n"
)


def syncdreamer_chain(start: int, image_src: tuple[int, int], mask_src: tuple[int, int] | None, x: float,
                      elevation: float, crop_size: int, mask_is_background: bool, batch_size: int = 1,
                      mesh: bool = True, sampler_title: str | None = None):
    """Prepare -> elevation -> loader -> sampler -> decode -> grid preview (+ mesh). Returns
    (nodes, links, ids)."""
    i = start
    ids = {k: i + n for n, k in enumerate(["prepare", "elevation", "loader", "sampler", "decode", "grid", "preview",
                                          "strip", "save_views", "recon", "save_mesh", "preview3d"])}
    nodes = [
        Node(ids["prepare"], "SyncDreamerPrepareImage", (x, 0),
             {"crop_size": crop_size, "mask_is_background": mask_is_background}),
        Node(ids["elevation"], "SyncDreamerElevation", (x, 260), {"degrees": elevation}),
        Node(ids["loader"], "SyncDreamerCheckpointLoader", (x, 420), {"ckpt_name": CKPT, "dtype": "auto"}),
        Node(ids["sampler"], "SyncDreamerSampler", (x + 380, 0),
             {"seed": 6033, "steps": 50, "cfg": 2.0, "sampler_name": "ddim", "scheduler": "ddim_uniform",
              "eta": 1.0, "batch_size": batch_size, "batch_view_num": 8}, title=sampler_title),
        Node(ids["decode"], "VAEDecode", (x + 760, 0)),
        Node(ids["grid"], "SyncDreamerComposeViews", (x + 1000, 0), {"layout": "grid"}),
        Node(ids["preview"], "PreviewImage", (x + 1360, 0), size=(420, 440)),
        Node(ids["strip"], "SyncDreamerComposeViews", (x + 1000, 130), {"layout": "strip"}),
        Node(ids["save_views"], "SaveImage", (x + 1360, 480), {"filename_prefix": "syncdreamer/views"}),
    ]
    links = [
        (*image_src, ids["prepare"], "image"),
        (ids["prepare"], 0, ids["sampler"], "image"),
        (ids["elevation"], 0, ids["sampler"], "elevation"),
        (ids["loader"], 0, ids["sampler"], "syncdreamer_model"),
        (ids["loader"], 1, ids["sampler"], "vae"),
        (ids["sampler"], 0, ids["decode"], "samples"),
        (ids["loader"], 1, ids["decode"], "vae"),
        (ids["decode"], 0, ids["grid"], "views"),
        (ids["grid"], 0, ids["preview"], "images"),
        (ids["decode"], 0, ids["strip"], "views"),
        (ids["strip"], 0, ids["save_views"], "images"),
    ]
    if mask_src is not None:
        links.append((*mask_src, ids["prepare"], "mask"))
    if mesh:
        nodes += [
            Node(ids["recon"], "SyncDreamerReconstruct", (x + 1000, 260),
                 {"method": "fast", "resolution": 128, "quality_steps": 800, "quality_resolution": 96,
                  "vote_tolerance": 2}),
            Node(ids["save_mesh"], "SyncDreamerSaveMesh", (x + 1000, 560),
                 {"filename_prefix": "mesh/syncdreamer", "format": "glb", "up_axis": "y"}),
            Node(ids["preview3d"], "Preview3D", (x + 1820, 0), size=(520, 560)),
        ]
        links += [
            (ids["decode"], 0, ids["recon"], "views"),
            (ids["recon"], 0, ids["save_mesh"], "mesh"),
            (ids["save_mesh"], 0, ids["preview3d"], "model_file"),
        ]
    return nodes, links, ids


def image_to_3d() -> Graph:
    load = Node(1, "LoadImage", (-380, 0), {"image": TEAPOT}, size=(340, 360))
    nodes, links, _ = syncdreamer_chain(10, (1, 0), (1, 1), 0, elevation=0.0, crop_size=180, mask_is_background=True)
    note = Node(90, "MarkdownNote", (-380, 420), title="Image to 3D", size=(340, 330), text=(
        "Load an RGBA image (its alpha is the object mask; LoadImage's MASK is 1 on the background, hence "
        "`mask_is_background` on). Set the **elevation** of your photo (a rough value in [-10, 40] is enough; "
        "this teapot was taken at 0) and **crop_size** (200 for most objects, 180 or 150 for wide ones).\n\n"
        + MODELS_NOTE))
    return Graph([load] + nodes, links, [note])


def text_to_3d() -> Graph:
    nodes = [
        Node(1, "CheckpointLoaderSimple", (-1500, 0), {"ckpt_name": SD15}),
        Node(2, "CLIPTextEncode", (-1100, -120), {"text": "a cute cartoon toy robot, full body, centered, 3d render, "
                                                   "plain white background, studio lighting"}, title="Prompt"),
        Node(3, "CLIPTextEncode", (-1100, 140), {"text": "cropped, cut off, shadow, ground, multiple objects, text, "
                                                  "busy background, dark background"}, title="Negative"),
        Node(4, "EmptyLatentImage", (-1100, 380), {"width": 512, "height": 512, "batch_size": 1}),
        Node(5, "KSampler", (-700, 0), {"seed": 42, "steps": 25, "cfg": 7.0, "sampler_name": "dpmpp_2m",
                                        "scheduler": "karras", "denoise": 1.0}),
        Node(6, "VAEDecode", (-380, 0)),
        Node(7, "SyncDreamerWhiteBackgroundMask", (-380, 140)),
    ]
    links = [(1, 0, 5, "model"), (1, 1, 2, "clip"), (1, 1, 3, "clip"), (2, 0, 5, "positive"), (3, 0, 5, "negative"),
             (4, 0, 5, "latent_image"), (5, 0, 6, "samples"), (1, 2, 6, "vae"), (6, 0, 7, "image")]
    chain, chain_links, _ = syncdreamer_chain(10, (6, 0), (7, 0), 0, elevation=10.0, crop_size=200,
                                              mask_is_background=False)
    note = Node(90, "MarkdownNote", (-1500, 260), title="Text to 3D", size=(360, 380), text=(
        "Stable Diffusion 1.5 draws the object on white; a simple white-background threshold finds it "
        "(swap in any background-removal node for harder images: connect its object mask with "
        "`mask_is_background` off). SD renders are usually seen slightly from above: elevation 10-20.\n\n"
        + MODELS_NOTE + f"- **{SD15}** (Stable Diffusion 1.5) in `ComfyUI/models/checkpoints/`.\n"))
    return Graph(nodes + chain, links + chain_links, [note])


def sketch_to_3d() -> Graph:
    nodes = [
        Node(1, "LoadImage", (-1500, 0), {"image": SKETCH}, size=(340, 360)),
        Node(2, "CheckpointLoaderSimple", (-1500, 420), {"ckpt_name": SD15}),
        Node(3, "CLIPTextEncode", (-1100, -120), {"text": "a ceramic mug with a heart, 3d render, plain white "
                                                   "background, centered, soft studio light"}, title="Prompt"),
        Node(4, "CLIPTextEncode", (-1100, 140), {"text": "sketch, lines, flat, drawing, shadow, dark background"},
             title="Negative"),
        Node(5, "VAEEncode", (-1100, 380)),
        Node(6, "KSampler", (-700, 0), {"seed": 7, "steps": 30, "cfg": 7.0, "sampler_name": "dpmpp_2m",
                                        "scheduler": "karras", "denoise": 0.6}, title="KSampler (img2img)"),
        Node(7, "VAEDecode", (-380, 0)),
        Node(8, "SyncDreamerWhiteBackgroundMask", (-380, 140)),
    ]
    links = [(2, 0, 6, "model"), (2, 1, 3, "clip"), (2, 1, 4, "clip"), (3, 0, 6, "positive"), (4, 0, 6, "negative"),
             (1, 0, 5, "pixels"), (2, 2, 5, "vae"), (5, 0, 6, "latent_image"), (6, 0, 7, "samples"), (2, 2, 7, "vae"),
             (7, 0, 8, "image")]
    chain, chain_links, _ = syncdreamer_chain(10, (7, 0), (8, 0), 0, elevation=10.0, crop_size=200,
                                              mask_is_background=False)
    note = Node(90, "MarkdownNote", (-1500, 560), title="Sketch to 3D", size=(360, 420), text=(
        "A sketch or cartoon is cleaned into a rendered-looking object by Stable Diffusion img2img "
        "(`denoise` 0.5-0.7 keeps the shape; lower keeps more of the drawing). For more control over the "
        "shape, add a **ControlNet scribble** (Apply ControlNet with control_v11p_sd15_scribble) between the "
        "prompts and the KSampler and start from an empty latent.\n\n"
        + MODELS_NOTE + f"- **{SD15}** in `ComfyUI/models/checkpoints/`.\n"))
    return Graph(nodes + chain, links + chain_links, [note])


def candidates() -> Graph:
    load = Node(1, "LoadImage", (-380, 0), {"image": TEAPOT}, size=(340, 360))
    chain, links, ids = syncdreamer_chain(10, (1, 0), (1, 1), 0, elevation=0.0, crop_size=180,
                                          mask_is_background=True, batch_size=4)
    pick = Node(40, "SyncDreamerPickCandidate", (1000, 260), {"candidate": 0})
    for node in chain:
        if node.id == ids["recon"]:
            node.pos = (1000, 400)
        if node.id == ids["save_mesh"]:
            node.pos = (1000, 700)
    links = [link for link in links if not (link[2] == ids["recon"])]
    links += [(ids["decode"], 0, 40, "views"), (40, 0, ids["recon"], "views")]
    note = Node(90, "MarkdownNote", (-380, 420), title="Candidates", size=(340, 300), text=(
        "SyncDreamer does not always succeed: generate several candidates at once (`batch_size` 4 gives four "
        "independent 16-view sets, shown as four 4x4 grids), then set **candidate** (0-3) to the best one and "
        "queue again: only the mesh part runs again.\n\n" + MODELS_NOTE))
    return Graph([load] + chain + [pick], links, [note])


def elevation_refinement() -> Graph:
    load = Node(1, "LoadImage", (-380, 0), {"image": TEAPOT}, size=(340, 360))
    first, links, ids = syncdreamer_chain(10, (1, 0), (1, 1), 0, elevation=30.0, crop_size=180,
                                          mask_is_background=True, mesh=False, sampler_title="SyncDreamer Sampler (first guess)")
    estimate = Node(40, "SyncDreamerEstimateElevation", (1000, 260), {"first_guess": 30.0, "min_confidence": 0.0})
    overlay = Node(41, "PreviewImage", (1360, 960), title="Best silhouette", size=(300, 320))
    second = Node(42, "SyncDreamerSampler", (1760, 0),
                  {"seed": 6033, "steps": 50, "cfg": 2.0, "sampler_name": "ddim", "scheduler": "ddim_uniform",
                   "eta": 1.0, "batch_size": 1, "batch_view_num": 8}, title="SyncDreamer Sampler (estimated elevation)")
    decode = Node(43, "VAEDecode", (2140, 0))
    grid = Node(44, "SyncDreamerComposeViews", (2380, 0), {"layout": "grid"})
    preview = Node(45, "PreviewImage", (2680, 0), size=(420, 440))
    recon = Node(46, "SyncDreamerReconstruct", (2380, 200),
                 {"method": "fast", "resolution": 128, "quality_steps": 800, "quality_resolution": 96, "vote_tolerance": 2})
    save = Node(47, "SyncDreamerSaveMesh", (2380, 480), {"filename_prefix": "mesh/syncdreamer", "format": "glb", "up_axis": "y"})
    view3d = Node(48, "Preview3D", (2680, 480), size=(520, 560))
    links += [
        (ids["prepare"], 0, 40, "image"), (ids["prepare"], 1, 40, "object_mask"), (ids["decode"], 0, 40, "views"),
        (ids["elevation"], 0, 40, "first_guess"), (40, 1, 41, "images"),
        (ids["loader"], 0, 42, "syncdreamer_model"), (ids["loader"], 1, 42, "vae"), (ids["prepare"], 0, 42, "image"),
        (40, 0, 42, "elevation"), (42, 0, 43, "samples"), (ids["loader"], 1, 43, "vae"), (43, 0, 44, "views"),
        (44, 0, 45, "images"), (43, 0, 46, "views"), (46, 0, 47, "mesh"), (47, 0, 48, "model_file"),
    ]
    note = Node(90, "MarkdownNote", (-380, 420), title="Elevation refinement", size=(340, 360), text=(
        "Not sure of the photo's elevation? Generate once with a guess, let **Estimate Elevation** compare the "
        "silhouettes of the 16 generated views with the input, and generate again with the estimate. The "
        "preview outlines the best-matching silhouette; `min_confidence` keeps the guess when the estimate is "
        "unclear.\n\n" + MODELS_NOTE))
    return Graph([load] + first + [estimate, overlay, second, decode, grid, preview, recon, save, view3d], links, [note])


WORKFLOWS = {
    "image_to_3d": image_to_3d,
    "text_to_3d": text_to_3d,
    "sketch_to_3d": sketch_to_3d,
    "candidates": candidates,
    "elevation_refinement": elevation_refinement,
}


def main() -> None:
    definitions = node_definitions()
    (OUT / "api").mkdir(parents=True, exist_ok=True)
    for name, make in WORKFLOWS.items():
        ui = build_ui(make(), definitions)
        problems = validate_ui(ui, definitions)
        if problems:
            raise SystemExit(f"{name}: " + "\n".join(problems))
        (OUT / f"{name}.json").write_text(json.dumps(ui, indent=1) + "\n")
        (OUT / "api" / f"{name}.json").write_text(json.dumps(ui_to_api(ui, definitions), indent=1) + "\n")
        draw_diagram(ui, OUT / f"{name}.jpg")
        print(f"wrote {name}: {len(ui['nodes'])} nodes, {len(ui['links'])} links")


if __name__ == "__main__":
    main()
