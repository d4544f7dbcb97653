"""Writes reference/preprocess/pillow10.json: digests of the reference's input preparation
(crop to the alpha box, bicubic resize, centred paste: ``ldm/util.py`` prepare_inputs)
computed with Pillow 10.0.0, the version the reference pins. Run it with that Pillow:

    python -m venv /tmp/pil10 && /tmp/pil10/bin/pip install pillow==10.0.0 numpy
    /tmp/pil10/bin/python scripts/make_preprocess_reference.py [--testset DIR]

The cases are synthetic images made from fixed seeds (``preprocess_cases``), the bundled
teapot, and, with --testset, the reference's 49 test inputs; every case is tried with the
crop sizes the authors use and with -1.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from preprocess_cases import CROP_SIZES, synthetic_cases  # noqa: E402


def reference_canvas(image: Image.Image, crop_size: int, size: int = 256) -> np.ndarray:
    """The reference's steps with Pillow's own operations."""
    if crop_size != -1:
        alpha = np.asarray(image)[:, :, 3]
        ys, xs = np.nonzero(alpha)
        cropped = image.crop((xs.min(), ys.min(), xs.max(), ys.max()))
        scale = crop_size / max(cropped.height, cropped.width)
        resized = cropped.resize((int(scale * cropped.width), int(scale * cropped.height)), resample=Image.BICUBIC)
        canvas = Image.new("RGBA", (size, size), 0)
        canvas.paste(resized, ((size - resized.width) // 2, (size - resized.height) // 2))
    else:
        side = max(image.width, image.height)
        square = Image.new("RGBA", (side, side), 0)
        square.paste(image, ((side - image.width) // 2, (side - image.height) // 2))
        canvas = square.resize((size, size), resample=Image.BICUBIC)
    return np.asarray(canvas)


def digest(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array, np.uint8).tobytes()).hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--testset", type=Path, help="folder of the reference's RGBA test inputs")
    args = parser.parse_args()
    import PIL

    cases = {name: Image.fromarray(array, "RGBA") for name, array in synthetic_cases()}
    cases["teapot"] = Image.open(ROOT / "syncdreamer_core" / "examples" / "teapot.png").convert("RGBA")
    if args.testset:
        for path in sorted(args.testset.glob("*.png")):
            cases[f"testset/{path.stem}"] = Image.open(path).convert("RGBA")
    digests = {f"{name}@{crop}": digest(reference_canvas(image, crop)) for name, image in cases.items()
               for crop in CROP_SIZES}
    out = ROOT / "reference" / "preprocess" / "pillow10.json"
    out.write_text(json.dumps({"pillow": PIL.__version__, "digests": digests}, indent=1, sort_keys=True) + "\n")
    print(f"wrote {out}: {len(digests)} cases with Pillow {PIL.__version__}")


if __name__ == "__main__":
    main()
