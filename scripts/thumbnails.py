"""Thumbnails of the shipped workflows, made from real results: each shows the kind of
input the workflow starts from, then the 16 views SyncDreamer generated for a chicken
(bundled) and the textured mesh this pack reconstructs from them, turning."""

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
                                      'background"', fill=(30, 30, 30), font=_font(24), spacing=8)
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
    "image_to_3d": "Image to 3D",
    "text_to_3d": "Text to 3D",
    "sketch_to_3d": "Sketch to 3D",
    "candidates": "Best of 4 candidates",
    "elevation_refinement": "Elevation refinement",
    "image_to_3d_background_removal": "Photo to 3D (background removal)",
}


def thumbnail(name: str, grid: np.ndarray, spin: np.ndarray) -> Image.Image:
    image = Image.new("RGB", (WIDTH, HEIGHT), BACKGROUND)
    draw = ImageDraw.Draw(image)
    draw.text((24, 18), f"SyncDreamer: {CAPTIONS[name]}", fill=(240, 240, 240), font=_font(34))
    top = 100
    image.paste(_input_panel(name), (24, top))
    image.paste(Image.fromarray(grid).resize((PANEL, PANEL), Image.LANCZOS), (24 + PANEL + 24, top))
    tiles = Image.new("RGB", (PANEL, PANEL), (255, 255, 255))
    half = PANEL // 2
    for i, frame in enumerate(spin[:4]):
        tiles.paste(Image.fromarray(frame), ((i % 2) * half, (i // 2) * half))
    image.paste(tiles, (24 + 2 * (PANEL + 24), top))
    labels = ("input", "16 views (example: a chicken)", "textured mesh")
    for i, label in enumerate(labels):
        draw.text((24 + i * (PANEL + 24), top + PANEL + 14), label, fill=(200, 200, 200), font=_font(20))
    for i in range(2):
        x = 24 + (i + 1) * (PANEL + 24) - 18
        draw.polygon([(x - 4, top + PANEL // 2 - 10), (x + 8, top + PANEL // 2), (x - 4, top + PANEL // 2 + 10)],
                     fill=(230, 230, 230))
    return image


def write_thumbnails(paths: dict[str, Path]) -> None:
    grid, spin = chicken_results()
    for name, path in paths.items():
        thumbnail(name, grid, spin).save(path, quality=88)
        print(f"wrote {path.name}")
