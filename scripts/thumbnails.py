"""Thumbnails of the shipped workflows: each names the workflow and what it does in letters
a template card shows legibly, then the input that workflow starts from and its results.

Without a ComfyUI that has the checkpoints, the results are an example (marked as one): the
16 views SyncDreamer generated for a toy (bundled) and the textured mesh this pack
reconstructs from them. Given a running ComfyUI with the SyncDreamer checkpoint (and SD 1.5
for Text and Sketch to 3D), each card is made from a run of that very template:

    python scripts/build_workflows.py --thumbnails-from 127.0.0.1:8188
"""

from __future__ import annotations

import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

WIDTH, HEIGHT = 960, 540
BACKGROUND = (28, 30, 34)
PANEL = 288
#: Titles of the nodes a card's results are read from (the workflows give their nodes these).
VIEWS_TITLE = "The 16 views (saved)"
RANKED_TITLE = "All candidates, best first"
SD_OBJECT_TITLE = "Stable Diffusion's object"


def _font(size: int):
    return ImageFont.load_default(size=size)


@dataclass
class Results:
    """What a card shows of a run: the 4x4 grid of views, frames of the mesh turning, the
    input where the run made it (Text to 3D's drawing; else the template's bundled input), and
    whether they are the shared example rather than this template's own run."""

    grid: np.ndarray
    spin: np.ndarray
    input: Image.Image | None = None
    example: bool = False


def _spin(asset, frames: int = 4) -> np.ndarray:
    from syncdreamer_core.recon.turntable import turntable

    spin = turntable(asset, frames=frames, elevation_deg=20.0, size=PANEL // 2, light=0.35, start_azimuth_deg=20.0)
    return (spin * 255).round().astype(np.uint8)


def example_results(frames: int = 4) -> Results:
    """The bundled views of a toy and the textured mesh made from them."""
    import torch

    from syncdreamer_core.files import EXAMPLES, load_views
    from syncdreamer_core.layout import compose_grid
    from syncdreamer_core.recon import make_asset, reconstruct_fast

    views = load_views(EXAMPLES / "chicken-views.png")
    grid = compose_grid(torch.from_numpy(views))[0].numpy()
    asset = make_asset(reconstruct_fast(views, return_details=True), texture_size=1024, max_faces=30000)
    return Results(grid, _spin(asset, frames), example=True)


def run_results(client, name: str, workflow: dict | None = None, on_event=None) -> Results:
    """Run template ``name`` (its API twin, or ``workflow``) on a ComfyUI and read the card's
    parts from what it produced: the views it saved (Best of 4: the ranked candidates, best
    first), the mesh Save Mesh wrote, Text to 3D's drawing."""
    from syncdreamer_core.comfy_http import ComfyError, run_failure
    from syncdreamer_core.recon.export import read_glb

    if workflow is None:
        from comfy_client import load_workflow

        workflow = load_workflow(name)
    entry = client.wait(client.submit(workflow), on_event)
    failure = run_failure(entry)
    if failure is not None:
        raise ComfyError(f"{name} failed on the server: {failure}")
    titled = {node.get("_meta", {}).get("title"): key for key, node in workflow.items()}
    outputs = entry["outputs"]
    with tempfile.TemporaryDirectory(prefix="syncdreamer-card-") as folder:
        def first_file(key: str | None, kind: str, what: str) -> Path:
            files = (outputs.get(key) or {}).get(kind) or []
            if not files:
                raise ComfyError(f"{name}: the run produced no {what}")
            return client.download(files[0], Path(folder))

        def image(title: str) -> Image.Image:
            with Image.open(first_file(titled.get(title), "images", repr(title))) as picture:
                return picture.convert("RGB")

        grid = np.asarray(image(RANKED_TITLE if name == "candidates" else VIEWS_TITLE))
        save = next(key for key, node in workflow.items() if node["class_type"] == "SyncDreamerSaveMesh")
        mesh = read_glb(first_file(save, "3d", "mesh"), workflow[save]["inputs"]["up_axis"])
        drawn = image(SD_OBJECT_TITLE) if name == "text_to_3d" else None
    return Results(grid, _spin(mesh), drawn)


def _input_panel(name: str, drawn: Image.Image | None = None) -> Image.Image:
    from syncdreamer_core.files import EXAMPLES

    panel = Image.new("RGB", (PANEL, PANEL), (255, 255, 255))
    if drawn is not None:
        image = drawn.copy()
        image.thumbnail((PANEL, PANEL))
        panel.paste(image, ((PANEL - image.width) // 2, (PANEL - image.height) // 2))
        return panel
    if name == "text_to_3d":
        draw = ImageDraw.Draw(panel)
        draw.multiline_text((18, 40), '"a cute cartoon toy\nrobot, full body,\ncentered, 3d render,\nplain white '
                                      'background"', fill=(30, 30, 30), font=_font(22), spacing=8)
        draw.text((18, 250), "Stable Diffusion 1.5", fill=(120, 120, 120), font=_font(20))
        return panel
    source = "sketch_mug.png" if name == "sketch_to_3d" else "teapot.png"
    image = Image.open(EXAMPLES / source)
    if image.mode == "RGBA":
        back = (0, 0, 0) if name == "image_to_3d_background_removal" else (255, 255, 255)
        canvas = Image.new("RGB", image.size, back)
        canvas.paste(image, mask=image.getchannel("A"))
        image = canvas
    image = image.convert("RGB")
    image.thumbnail((PANEL, PANEL))
    panel.paste(image, ((PANEL - image.width) // 2, (PANEL - image.height) // 2))
    return panel


CAPTIONS = {
    "image_to_3d": ("Image to 3D", "one picture of an object -> textured 3D mesh"),
    "text_to_3d": ("Text to 3D", "a prompt -> Stable Diffusion draws it -> 3D"),
    "sketch_to_3d": ("Sketch to 3D", "a sketch -> Stable Diffusion renders it -> 3D"),
    "candidates": ("Best of 4", "four tries at once, the most consistent is meshed"),
    "elevation_refinement": ("Elevation refinement", "camera height unknown? estimated, then redone"),
    "image_to_3d_background_removal": ("Photo to 3D", "any background: the object is cut out -> 3D"),
}
#: A colour band per template, so the cards tell apart at a glance.
ACCENTS = {"image_to_3d": (74, 144, 226), "text_to_3d": (226, 140, 60), "sketch_to_3d": (120, 190, 90),
           "candidates": (200, 90, 170), "elevation_refinement": (90, 190, 190),
           "image_to_3d_background_removal": (220, 200, 70)}


def thumbnail(name: str, results: Results) -> Image.Image:
    """The caption as large as a card shows legibly (the browser draws cards about 300 px
    wide: 64 px here is 20 px there), then the template's own input, the views and the mesh."""
    image = Image.new("RGB", (WIDTH, HEIGHT), BACKGROUND)
    draw = ImageDraw.Draw(image)
    title, subtitle = CAPTIONS[name]
    draw.rectangle([0, 0, 14, HEIGHT], fill=ACCENTS[name])
    draw.text((36, 14), title, fill=(250, 250, 250), font=_font(68))
    draw.text((38, 96), subtitle, fill=ACCENTS[name], font=_font(34))
    top, panel = 160, 256
    gap = (WIDTH - 36 - 3 * panel) // 3
    image.paste(_input_panel(name, results.input).resize((panel, panel), Image.LANCZOS), (36, top))
    image.paste(Image.fromarray(results.grid).resize((panel, panel), Image.LANCZOS), (36 + panel + gap, top))
    tiles = Image.new("RGB", (PANEL, PANEL), (255, 255, 255))
    half = PANEL // 2
    for i, frame in enumerate(results.spin[:4]):
        tiles.paste(Image.fromarray(frame), ((i % 2) * half, (i // 2) * half))
    image.paste(tiles.resize((panel, panel), Image.LANCZOS), (36 + 2 * (panel + gap), top))
    mark = " *" if results.example else ""
    labels = ("its input", f"16 views{mark}", f"textured mesh{mark}")
    for i, label in enumerate(labels):
        draw.text((36 + i * (panel + gap), top + panel + 10), label, fill=(225, 225, 225), font=_font(30))
    if results.example:
        draw.text((36, HEIGHT - 34), "* example: SyncDreamer's own views of a toy, meshed by this pack",
                  fill=(150, 150, 150), font=_font(20))
    for i in range(2):
        x = 36 + (i + 1) * (panel + gap) - gap // 2
        y = top + panel // 2
        draw.polygon([(x - 8, y - 16), (x + 10, y), (x - 8, y + 16)], fill=(230, 230, 230))
    return image


def write_thumbnails(cards: dict[str, tuple[Path, tuple[str, ...]]], server: str | None = None) -> None:
    """Every card (name -> its file and the ComfyUI versions that run its template): from a run
    of its template on ``server`` (a template that host cannot run keeps its card), else with the
    example results."""
    if server is None:
        shared = example_results()
    else:
        from syncdreamer_core.comfy_http import ComfyClient

        client = ComfyClient(server)
        version = client.get_json("/system_stats")["system"]["comfyui_version"]
    for name, (path, hosts) in cards.items():
        if server is not None and version not in hosts:
            print(f"kept {path.name}: ComfyUI {version} cannot run it")
            continue
        results = shared if server is None else run_results(client, name)
        thumbnail(name, results).save(path, quality=88)
        print(f"wrote {path.name}" + (" (example results)" if results.example else f" (a run on {server})"))
