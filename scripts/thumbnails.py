"""Thumbnails of the shipped workflows: each names the workflow and what it does in letters
a template card shows legibly, then the input that workflow starts from, and (marked as an
example) real results: the 16 views SyncDreamer generated for a toy (bundled) and the
textured mesh this pack reconstructs from them, turning."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

WIDTH, HEIGHT = 960, 540
BACKGROUND = (28, 30, 34)
PANEL = 288


def _font(size: int):
    return ImageFont.load_default(size=size)


def chicken_results(frames: int = 4):
    """(4x4 grid of the bundled views, turntable frames of their textured mesh)."""
    import torch

    from syncdreamer_core.files import EXAMPLES, load_views
    from syncdreamer_core.layout import compose_grid
    from syncdreamer_core.recon import make_asset, reconstruct_fast
    from syncdreamer_core.recon.turntable import turntable

    views = load_views(EXAMPLES / "chicken-views.png")
    grid = compose_grid(torch.from_numpy(views))[0].numpy()
    asset = make_asset(reconstruct_fast(views, return_details=True), texture_size=1024, max_faces=30000)
    spin = turntable(asset, frames=frames, elevation_deg=20.0, size=PANEL // 2, light=0.35, start_azimuth_deg=20.0)
    return grid, (spin * 255).round().astype(np.uint8)


def _input_panel(name: str) -> Image.Image:
    from syncdreamer_core.files import EXAMPLES

    panel = Image.new("RGB", (PANEL, PANEL), (255, 255, 255))
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


def thumbnail(name: str, grid: np.ndarray, spin: np.ndarray) -> Image.Image:
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
    image.paste(_input_panel(name).resize((panel, panel), Image.LANCZOS), (36, top))
    image.paste(Image.fromarray(grid).resize((panel, panel), Image.LANCZOS), (36 + panel + gap, top))
    tiles = Image.new("RGB", (PANEL, PANEL), (255, 255, 255))
    half = PANEL // 2
    for i, frame in enumerate(spin[:4]):
        tiles.paste(Image.fromarray(frame), ((i % 2) * half, (i // 2) * half))
    image.paste(tiles.resize((panel, panel), Image.LANCZOS), (36 + 2 * (panel + gap), top))
    labels = ("its input", "16 views *", "textured mesh *")
    for i, label in enumerate(labels):
        draw.text((36 + i * (panel + gap), top + panel + 10), label, fill=(225, 225, 225), font=_font(30))
    draw.text((36, HEIGHT - 34), "* example: SyncDreamer's own views of a toy, meshed by this pack",
              fill=(150, 150, 150), font=_font(20))
    for i in range(2):
        x = 36 + (i + 1) * (panel + gap) - gap // 2
        y = top + panel // 2
        draw.polygon([(x - 8, y - 16), (x + 10, y), (x - 8, y + 16)], fill=(230, 230, 230))
    return image


def write_thumbnails(paths: dict[str, Path]) -> None:
    grid, spin = chicken_results()
    for name, path in paths.items():
        thumbnail(name, grid, spin).save(path, quality=88)
        print(f"wrote {path.name}")
