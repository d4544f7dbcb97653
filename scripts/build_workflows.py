"""Writes the shipped workflows: example_workflows/<title>.json (UI format: ComfyUI lists it
in the template browser under its file name, with <title>.jpg as thumbnail) and
example_workflows/api/<name>.json (API format, for POST /prompt and comfy_client.py).

    python scripts/build_workflows.py            # workflows and thumbnails
    python scripts/build_workflows.py --no-thumbnails
    python scripts/build_workflows.py --thumbnails-from 127.0.0.1:8188

Each thumbnail shows the template's input and results: with --thumbnails-from, those of a
run of that template on a ComfyUI that has the checkpoints; else an example (the bundled
SyncDreamer views of a toy and the textured mesh this pack reconstructs from them), marked
as one.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from thumbnails import RANKED_TITLE, SD_OBJECT_TITLE, VIEWS_TITLE, write_thumbnails  # noqa: E402
from workflow_tools import (  # noqa: E402
    HOSTS,
    ROOT,
    Graph,
    Group,
    Node,
    build_ui,
    node_definitions,
    overlaps,
    ui_to_api,
    validate_ui,
)

from syncdreamer_core.diffusion.schedule import steps_run  # noqa: E402
from syncdreamer_core.wait import duration_span, typical_wait  # noqa: E402

OUT = ROOT / "example_workflows"
CKPT = "syncdreamer-pretrain.ckpt"
CKPT_URL = f"https://huggingface.co/camenduru/SyncDreamer/resolve/main/{CKPT}"
SD15 = "v1-5-pruned-emaonly-fp16.safetensors"
SD15_URL = f"https://huggingface.co/Comfy-Org/stable-diffusion-v1-5-archive/resolve/main/{SD15}"
BIREFNET = "birefnet.safetensors"
BIREFNET_URL = f"https://huggingface.co/Comfy-Org/BiRefNet/resolve/main/background_removal/{BIREFNET}"
TEAPOT = "syncdreamer_teapot.png"
SKETCH = "syncdreamer_sketch_mug.png"

# The start note is set in level-2 headings: the frontends draw a note's body text at 10 px
# (7 px on screen at the zoom a template opens at), its headings at 15 px, above the 14 px of
# node titles.
MODELS_NOTE = "## No checkpoint yet? Press Download checkpoint on Load SyncDreamer Checkpoint."
SD_NOTE = "## Stable Diffusion 1.5 is offered for download when missing."


def start_note(*paragraphs: str) -> str:
    return "\n\n".join(p if p.startswith("## ") else f"## {p}" for p in paragraphs)


def time_note(graph: Graph) -> str:
    """What the template's sampling costs on a CPU and on a GPU, from its samplers' steps and
    candidates (``syncdreamer_core.wait.typical_wait``)."""
    samplers = [n for n in graph.nodes if n.type == "SyncDreamerSampler"]
    evaluations = sum(steps_run(s.widgets["steps"]) * s.widgets["batch_size"] for s in samplers)
    wait = typical_wait(evaluations)
    batch = samplers[0].widgets["batch_size"]
    what = f" ({len(samplers)} runs)" if len(samplers) > 1 else f" ({batch} candidates)" if batch > 1 else ""
    return (f"## Sampling{what} takes {duration_span(*wait.cpu)} on a CPU (the Sampler tells its estimate first), "
            f"about {duration_span(*wait.gpu)} on a GPU (estimated).")


def sampler_widgets(batch_size: int = 1) -> dict:
    return {"seed": 6033, "steps": 50, "cfg": 2.0, "sampler_name": "ddim", "scheduler": "ddim_uniform", "eta": 1.0,
            "batch_size": batch_size, "batch_view_num": 8}


RECON_WIDGETS = {"method": "fast", "resolution": 128, "quality_steps": 800, "quality_resolution": 96, "vote_tolerance": 2,
                 "texture": "1024", "max_faces": 30000, "cleanup": False}


class Chain:
    """The SyncDreamer part every workflow shares, with ids from ``start``."""

    def __init__(self, start: int, elevation: float, crop_size: int, mask_is_background: bool, batch_size: int = 1,
                 sampler_title: str | None = None):
        i = iter(range(start, start + 100))
        self.prepare = Node(next(i), "SyncDreamerPrepareImage", {"crop_size": crop_size,
                                                                 "mask_is_background": mask_is_background})
        self.elevation = Node(next(i), "SyncDreamerElevation", {"degrees": elevation})
        self.loader = Node(next(i), "SyncDreamerCheckpointLoader", {"ckpt_name": CKPT, "dtype": "auto"},
                           models=[{"name": CKPT, "url": CKPT_URL, "directory": "syncdreamer"}])
        self.sampler = Node(next(i), "SyncDreamerSampler", sampler_widgets(batch_size), title=sampler_title)
        self.decode = Node(next(i), "VAEDecode")
        self.grid = Node(next(i), "SyncDreamerComposeViews", {"layout": "grid"}, title="Views as 4x4 grid")
        # one node shows the views and saves them (Split Views reads the grid back)
        self.preview = Node(next(i), "SaveImage", {"filename_prefix": "syncdreamer/views"}, title=VIEWS_TITLE)
        self.recon = Node(next(i), "SyncDreamerReconstruct", dict(RECON_WIDGETS))
        self.save_mesh = Node(next(i), "SyncDreamerSaveMesh", {"filename_prefix": "syncdreamer/mesh", "format": "glb",
                                                               "up_axis": "y"})
        self.preview3d = Node(next(i), "Preview3D")
        self.turntable = Node(next(i), "SyncDreamerTurntable", {"frames": 24, "elevation": 20.0, "resolution": 384,
                                                                "light": 0.35})
        self.webp = Node(next(i), "SaveAnimatedWEBP", {"filename_prefix": "syncdreamer/turntable", "fps": 12.0,
                                                       "lossless": False, "quality": 90, "method": "default"},
                         title="Turntable")

    def sampling_links(self, image_src, mask_src, views: bool = True) -> list:
        """``views``: show and save the 16 views (a first guess that is only measured does not)."""
        links = [
            (*image_src, self.prepare.id, "image"),
            (self.prepare.id, 0, self.sampler.id, "image"),
            (self.elevation.id, 0, self.sampler.id, "elevation"),
            (self.loader.id, 0, self.sampler.id, "syncdreamer_model"),
            (self.loader.id, 1, self.sampler.id, "vae"),
            (self.sampler.id, 0, self.decode.id, "samples"),
            (self.loader.id, 1, self.decode.id, "vae"),
        ]
        if views:
            links += [(self.decode.id, 0, self.grid.id, "views"), (self.grid.id, 0, self.preview.id, "images")]
        if mask_src is not None:
            links.append((*mask_src, self.prepare.id, "mask"))
        return links

    def mesh_links(self, views_src, turntable: bool = True) -> list:
        links = [
            (*views_src, self.recon.id, "views"),
            (self.recon.id, 0, self.save_mesh.id, "mesh"),
            (self.save_mesh.id, 0, self.preview3d.id, "model_file"),
        ]
        if turntable:
            links += [(self.recon.id, 0, self.turntable.id, "mesh"), (self.turntable.id, 0, self.webp.id, "images")]
        return links

    def input_group(self, intro: Node, sources: list[Node], title: str = "1. Input") -> Group:
        """The start: the note, the input and its preparation."""
        return Group(title, [[intro], [*sources, self.prepare, self.elevation]], color="#444")

    def generate_group(self, title: str = "2. Generate the 16 views", prepare: bool = False,
                       views: bool = True) -> Group:
        # the loader first: a wire from the group above then enters Prepare Image below the group's title
        then = [self.prepare, self.elevation] if prepare else []
        shown = [[self.decode, self.grid], [self.preview]] if views else [[self.decode]]
        return Group(title, [[self.loader, *then], [self.sampler], *shown], color="#8A8")

    def mesh_group(self, title: str = "3. Textured mesh", turntable: bool = True) -> Group:
        """With the turntable, or (in the larger workflows, to keep them readable at the zoom they
        open at) the mesh, its file and its viewer side by side."""
        columns = ([[self.recon, self.save_mesh], [self.preview3d], [self.turntable, self.webp]] if turntable
                   else [[self.recon], [self.save_mesh], [self.preview3d]])
        return Group(title, columns, color="#a1309b")


def note(node_id: int, title: str, text: str, height: int = 300) -> Node:
    return Node(node_id, "MarkdownNote", title=title, size=(360, height), text=text)


def image_to_3d() -> Graph:
    load = Node(1, "LoadImage", {"image": TEAPOT})
    chain = Chain(10, elevation=0.0, crop_size=180, mask_is_background=True)
    intro = note(90, "Image to 3D: start here", start_note(
        "Load one object (transparent PNG, or on plain white) and press Run.",
        "elevation: how far above the object you looked, in degrees (this teapot: 0).", MODELS_NOTE))
    groups = [chain.input_group(intro, [load]), chain.generate_group(), chain.mesh_group()]
    links = chain.sampling_links((1, 0), (1, 1)) + chain.mesh_links((chain.decode.id, 0))
    return Graph(groups, links)


def image_to_3d_background_removal() -> Graph:
    load = Node(1, "LoadImage", {"image": TEAPOT}, title="Load a photo (any background)")
    remover = Node(2, "LoadBackgroundRemovalModel", {"bg_removal_name": BIREFNET},
                   models=[{"name": BIREFNET, "url": BIREFNET_URL, "directory": "background_removal"}])
    remove = Node(3, "RemoveBackground")
    chain = Chain(10, elevation=0.0, crop_size=180, mask_is_background=False)
    intro = note(90, "Photo to 3D: start here", start_note(
        "A photo on any background: Remove Background finds the object. Press Run.",
        "BiRefNet is offered for download when missing.", MODELS_NOTE))
    groups = [chain.input_group(intro, [load, remover, remove], "1. Input and background removal"),
              chain.generate_group(), chain.mesh_group()]
    links = [(2, 0, 3, "bg_removal_model"), (1, 0, 3, "image")]
    links += chain.sampling_links((1, 0), (3, 0)) + chain.mesh_links((chain.decode.id, 0))
    return Graph(groups, links)


def sd_front(first_id: int, prompt: str, negative: str, img2img: bool):
    i = iter(range(first_id, first_id + 20))
    nodes = {
        "ckpt": Node(next(i), "CheckpointLoaderSimple", {"ckpt_name": SD15},
                     models=[{"name": SD15, "url": SD15_URL, "directory": "checkpoints"}]),
        "prompt": Node(next(i), "CLIPTextEncode", {"text": prompt}, title="Prompt", size=(290, 140)),
        "negative": Node(next(i), "CLIPTextEncode", {"text": negative}, title="Negative prompt", size=(290, 140)),
    }
    if img2img:
        nodes["latent"] = Node(next(i), "VAEEncode")
        nodes["ksampler"] = Node(next(i), "KSampler", {"seed": 7, "steps": 30, "cfg": 7.0, "sampler_name": "dpmpp_2m",
                                                       "scheduler": "karras", "denoise": 0.6}, title="KSampler (img2img)")
    else:
        nodes["latent"] = Node(next(i), "EmptyLatentImage", {"width": 512, "height": 512, "batch_size": 1})
        nodes["ksampler"] = Node(next(i), "KSampler", {"seed": 42, "steps": 25, "cfg": 7.0, "sampler_name": "dpmpp_2m",
                                                       "scheduler": "karras", "denoise": 1.0})
    nodes["decode"] = Node(next(i), "VAEDecode")
    nodes["mask"] = Node(next(i), "SyncDreamerWhiteBackgroundMask")
    nodes["show"] = Node(next(i), "PreviewImage", title=SD_OBJECT_TITLE)
    n = nodes
    links = [(n["ckpt"].id, 0, n["ksampler"].id, "model"), (n["ckpt"].id, 1, n["prompt"].id, "clip"),
             (n["ckpt"].id, 1, n["negative"].id, "clip"), (n["prompt"].id, 0, n["ksampler"].id, "positive"),
             (n["negative"].id, 0, n["ksampler"].id, "negative"), (n["latent"].id, 0, n["ksampler"].id, "latent_image"),
             (n["ksampler"].id, 0, n["decode"].id, "samples"), (n["ckpt"].id, 2, n["decode"].id, "vae"),
             (n["decode"].id, 0, n["mask"].id, "image"), (n["decode"].id, 0, n["show"].id, "images")]
    return nodes, links


def text_to_3d() -> Graph:
    n, links = sd_front(1, "a cute cartoon toy robot, full body, centered, 3d render, plain white background, studio "
                           "lighting", "cropped, cut off, shadow, ground, multiple objects, text, busy background, "
                           "dark background", img2img=False)
    chain = Chain(20, elevation=10.0, crop_size=200, mask_is_background=False)
    intro = note(90, "Text to 3D: start here", start_note(
        "Edit the prompt and press Run: Stable Diffusion draws the object, SyncDreamer lifts it to 3D.",
        SD_NOTE, MODELS_NOTE))
    groups = [Group("1. Stable Diffusion draws the object", [[intro], [n["ckpt"], n["latent"]],
                                                              [n["prompt"], n["negative"]],
                                                              [n["ksampler"], n["decode"], n["mask"]], [n["show"]]],
                    color="#444"),
              chain.generate_group(prepare=True), chain.mesh_group()]
    links += chain.sampling_links((n["decode"].id, 0), (n["mask"].id, 0)) + chain.mesh_links((chain.decode.id, 0))
    return Graph(groups, links)


def sketch_to_3d() -> Graph:
    load = Node(1, "LoadImage", {"image": SKETCH}, title="Load a sketch")
    n, links = sd_front(2, "a ceramic mug with a heart, 3d render, plain white background, centered, soft studio light",
                        "sketch, lines, flat, drawing, shadow, dark background", img2img=True)
    links += [(1, 0, n["latent"].id, "pixels"), (n["ckpt"].id, 2, n["latent"].id, "vae")]
    chain = Chain(20, elevation=10.0, crop_size=200, mask_is_background=False)
    intro = note(90, "Sketch to 3D: start here", start_note(
        "Load a sketch and press Run: Stable Diffusion renders it (denoise 0.5-0.7 keeps the shape), SyncDreamer "
        "lifts it to 3D.", SD_NOTE, MODELS_NOTE))
    # Stable Diffusion's render opens the second group, beside what SyncDreamer takes from it: a
    # first group that wide would reach under frontend 1.58's missing-model notice
    generate = chain.generate_group(prepare=True)
    generate.columns[0].append(n["show"])
    groups = [Group("1. Stable Diffusion cleans the sketch", [[intro], [load], [n["ckpt"], n["latent"]],
                                                               [n["prompt"], n["negative"]],
                                                               [n["ksampler"], n["decode"], n["mask"]]],
                    color="#444"),
              generate, chain.mesh_group(turntable=False)]
    links += (chain.sampling_links((n["decode"].id, 0), (n["mask"].id, 0))
              + chain.mesh_links((chain.decode.id, 0), turntable=False))
    return Graph(groups, links)


def candidates() -> Graph:
    load = Node(1, "LoadImage", {"image": TEAPOT})
    chain = Chain(10, elevation=0.0, crop_size=180, mask_is_background=True, batch_size=4)
    rank = Node(40, "SyncDreamerRankCandidates")
    ranked = Node(41, "SyncDreamerComposeViews", {"layout": "grid"}, title="Ranked candidates (best first)")
    show_ranked = Node(42, "PreviewImage", title=RANKED_TITLE)
    intro = note(90, "Best of 4: start here", start_note(
        "Press Run: four candidates at once, the most consistent one is meshed.", MODELS_NOTE))
    groups = [chain.input_group(intro, [load]), chain.generate_group(),
              Group("2b. Pick the most consistent candidate", [[rank, ranked], [show_ranked]], color="#b06634"),
              chain.mesh_group()]
    links = chain.sampling_links((1, 0), (1, 1)) + [
        (chain.decode.id, 0, rank.id, "views"), (rank.id, 1, ranked.id, "views"), (ranked.id, 0, show_ranked.id, "images"),
    ] + chain.mesh_links((rank.id, 0))
    return Graph(groups, links)


def elevation_refinement() -> Graph:
    load = Node(1, "LoadImage", {"image": TEAPOT})
    first = Chain(10, elevation=30.0, crop_size=180, mask_is_background=True,
                  sampler_title="Sampler: first guess")
    estimate = Node(40, "SyncDreamerEstimateElevation", {"first_guess": 30.0, "min_confidence": 0.3})
    overlay = Node(41, "PreviewImage", title="Best-matching silhouette")
    second = Chain(50, elevation=0.0, crop_size=180, mask_is_background=True,
                   sampler_title="Sampler: estimated elevation")
    intro = note(90, "Elevation refinement: start here", start_note(
        "Unsure of the elevation? Press Run: a first guess, an estimate from its views, then the views again.",
        MODELS_NOTE))
    # the first guess's views are only measured: the silhouette shows how well they match
    groups = [first.input_group(intro, [load]), first.generate_group("2. First guess", views=False),
              Group("3. Estimate the elevation, generate again",
                    [[estimate, overlay], [second.sampler], [second.decode, second.grid], [second.preview]],
                    color="#8A8"),
              second.mesh_group("4. Textured mesh", turntable=False)]
    links = first.sampling_links((1, 0), (1, 1), views=False) + [
        (first.prepare.id, 0, estimate.id, "image"), (first.prepare.id, 1, estimate.id, "object_mask"),
        (first.decode.id, 0, estimate.id, "views"), (first.elevation.id, 0, estimate.id, "first_guess"),
        (estimate.id, 1, overlay.id, "images"),
        (first.loader.id, 0, second.sampler.id, "syncdreamer_model"), (first.loader.id, 1, second.sampler.id, "vae"),
        (first.prepare.id, 0, second.sampler.id, "image"), (estimate.id, 0, second.sampler.id, "elevation"),
        (second.sampler.id, 0, second.decode.id, "samples"), (first.loader.id, 1, second.decode.id, "vae"),
        (second.decode.id, 0, second.grid.id, "views"), (second.grid.id, 0, second.preview.id, "images"),
    ] + second.mesh_links((second.decode.id, 0), turntable=False)
    return Graph(groups, links)


#: API name -> (title = the template's file name, builder, hosts it runs on).
WORKFLOWS = {
    "image_to_3d": ("SyncDreamer - Image to 3D", image_to_3d, HOSTS),
    "text_to_3d": ("SyncDreamer - Text to 3D", text_to_3d, HOSTS),
    "sketch_to_3d": ("SyncDreamer - Sketch to 3D", sketch_to_3d, HOSTS),
    "candidates": ("SyncDreamer - Best of 4 candidates", candidates, HOSTS),
    "elevation_refinement": ("SyncDreamer - Elevation refinement", elevation_refinement, HOSTS),
    "image_to_3d_background_removal": ("SyncDreamer - Photo to 3D",
                                       image_to_3d_background_removal, ("0.27.0",)),
}


def build(name: str) -> dict:
    """The UI workflow ``name``, built and checked against every host it targets."""
    title, make, hosts = WORKFLOWS[name]
    graph = make()
    intro = next(n for n in graph.nodes if n.type == "MarkdownNote")
    intro.text += "\n\n" + time_note(graph)
    ui = build_ui(graph, node_definitions(hosts[-1]))
    for host in hosts:
        problems = validate_ui(ui, node_definitions(host))
        if problems:
            raise SystemExit(f"{name} on ComfyUI {host}: " + "\n".join(problems))
    if overlaps(ui):
        raise SystemExit(f"{name}: nodes overlap: {overlaps(ui)}")
    return ui


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-thumbnails", action="store_true")
    parser.add_argument("--thumbnails-from", metavar="HOST:PORT",
                        help="a running ComfyUI with the checkpoints: each card from a run of its template")
    args = parser.parse_args()
    (OUT / "api").mkdir(parents=True, exist_ok=True)
    for name, (title, _, hosts) in WORKFLOWS.items():
        ui = build(name)
        (OUT / f"{title}.json").write_text(json.dumps(ui, indent=1) + "\n")
        (OUT / "api" / f"{name}.json").write_text(json.dumps(ui_to_api(ui, node_definitions(hosts[-1])), indent=1) + "\n")
        print(f"wrote {title}: {len(ui['nodes'])} nodes, {len(ui['links'])} links")
    if not args.no_thumbnails:
        write_thumbnails({name: (OUT / f"{title}.jpg", hosts) for name, (title, _, hosts) in WORKFLOWS.items()},
                         args.thumbnails_from)


if __name__ == "__main__":
    main()
