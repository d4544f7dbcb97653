"""Pictures for the node help pages (web/docs/*.jpg), made from real results: the bundled
SyncDreamer views of a chicken, the textured mesh this pack builds from them, and the
bundled teapot prepared as the sampler sees it.

    python scripts/build_docs_pictures.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

DOCS = ROOT / "web" / "docs"


def vertex_colour_spin(frames: int) -> np.ndarray:
    """The same mesh with vertex colours instead of the texture (same budget of 30000 faces)."""
    from thumbnails import PANEL

    from syncdreamer_core.files import EXAMPLES, load_views
    from syncdreamer_core.recon import make_asset, reconstruct_fast
    from syncdreamer_core.recon.turntable import turntable

    views = load_views(EXAMPLES / "chicken-views.png")
    asset = make_asset(reconstruct_fast(views, return_details=True), texture_size=None, max_faces=30000)
    spin = turntable(asset, frames=frames, elevation_deg=20.0, size=PANEL // 2, light=0.35, start_azimuth_deg=20.0)
    return (spin * 255).round().astype(np.uint8)


def printable(size_mm: float = 80.0) -> np.ndarray:
    """The chicken as it goes to the slicer (30000 faces, a flat base, 80 mm high), in one
    plastic colour: three sides and, from below, the flat base. Prints its report."""
    from thumbnails import PANEL

    from syncdreamer_core.files import EXAMPLES, load_views
    from syncdreamer_core.recon import make_asset, reconstruct_fast
    from syncdreamer_core.recon.asset import MeshAsset
    from syncdreamer_core.recon.printing import for_print
    from syncdreamer_core.recon.turntable import turntable

    asset = make_asset(reconstruct_fast(load_views(EXAMPLES / "chicken-views.png"), return_details=True),
                       texture_size=1024, max_faces=30000)
    for flat in (False, True):
        print(f"{size_mm:g} mm high, flat_base={flat}:", for_print(asset, size_mm, flat_base=flat)[2].describe())
    solid = for_print(asset, size_mm, flat_base=True)[0]
    vertices = np.asarray(solid.vertices, np.float32) / size_mm
    vertices[:, 1] -= 0.5
    plastic = np.tile(np.array([[0.93, 0.55, 0.2]], np.float32), (len(vertices), 1))
    shape = MeshAsset(vertices, np.asarray(solid.faces), vertex_colors=plastic).from_y_up()
    sides = turntable(shape, frames=3, elevation_deg=15.0, size=PANEL // 2, light=0.55, start_azimuth_deg=30.0)
    below = turntable(shape, frames=1, elevation_deg=-70.0, size=PANEL // 2, light=0.55, start_azimuth_deg=30.0)
    return (np.concatenate([*sides, *below], 1) * 255).round().astype(np.uint8)


def main() -> None:
    from thumbnails import example_results

    from syncdreamer_core.files import EXAMPLES
    from syncdreamer_core.preprocess import prepare_input

    DOCS.mkdir(parents=True, exist_ok=True)
    example = example_results(frames=6)
    grid, spin = example.grid, example.spin
    Image.fromarray(grid).resize((512, 512), Image.LANCZOS).save(DOCS / "views-grid.jpg", quality=85)
    Image.fromarray(np.concatenate(list(spin), 1)).save(DOCS / "turntable.jpg", quality=85)
    Image.fromarray(np.concatenate(list(vertex_colour_spin(frames=6)), 1)).save(DOCS / "turntable-vertex-colours.jpg",
                                                                                quality=85)
    Image.fromarray(printable()).save(DOCS / "print.jpg", quality=85)
    teapot = Image.open(EXAMPLES / "teapot.png")
    prepared = prepare_input(teapot, crop_size=180)
    before = Image.new("RGB", teapot.size, (120, 120, 120))
    before.paste(teapot, mask=teapot.getchannel("A"))
    pair = Image.new("RGB", (512, 256), (255, 255, 255))
    pair.paste(before.resize((256, 256)), (0, 0))
    pair.paste(Image.fromarray((prepared.image * 255).round().astype(np.uint8)), (256, 0))
    pair.save(DOCS / "prepare.jpg", quality=85)
    print("wrote", ", ".join(p.name for p in sorted(DOCS.glob("*.jpg"))))


if __name__ == "__main__":
    main()
