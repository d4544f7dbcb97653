"""Files and console output of the command line and the demo: reading and writing
images and view sets, finding the checkpoint on disk, progress bars."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .weights.checkpoint import OFFICIAL_FILENAME, OFFICIAL_SOURCE

CHECKPOINT_ENV = "SYNCDREAMER_CHECKPOINT"
COMFYUI_ENV = "COMFYUI_ROOT"
CHECKPOINT_SUFFIXES = (".ckpt", ".safetensors", ".pt", ".pth")
EXAMPLES = Path(__file__).resolve().parent / "examples"


def views_to_uint8(views: torch.Tensor) -> np.ndarray:
    """[..., H, W, 3] in [0, 1] -> uint8, truncating like the reference's PNG writer."""
    return (views.clamp(0, 1) * 255).to(torch.uint8).cpu().numpy()


def read_image(path: str | os.PathLike, name: str = "input") -> Image.Image:
    """An image file as the node route sees it after ComfyUI's LoadImage: EXIF orientation
    applied (a phone photo stands upright), first frame of an animation. Every failure is
    a ValueError naming the file and the cause."""
    from PIL import ImageOps, UnidentifiedImageError

    path = Path(path)
    try:
        with Image.open(path) as handle:
            image = ImageOps.exif_transpose(handle)
            image = image.copy() if image is handle else image
    except FileNotFoundError:
        raise ValueError(f"{name} {path} does not exist") from None
    except IsADirectoryError:
        raise ValueError(f"{name} {path} is a folder; give an image file") from None
    except PermissionError:
        raise ValueError(f"{name} {path} cannot be read (permission denied)") from None
    except Image.DecompressionBombError as error:
        raise ValueError(f"{name} {path} is too large to open safely ({error}); SyncDreamer works at 256x256: "
                         "downscale the image to a few megapixels") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise ValueError(f"{name} {path} is not a readable image ({error})") from None
    return image


def save_image(array: np.ndarray, path: str | os.PathLike, claim=None) -> Path:
    """Write a PNG atomically (through ``claim``, an ``outputs.OutputClaim``, when given)."""
    from .outputs import atomic_write

    def write(target: Path) -> None:
        Image.fromarray(array).save(target, format="PNG")

    return claim.write(Path(path), write) if claim is not None else atomic_write(Path(path), write)


def load_views(path: str | os.PathLike, view_count: int = 16) -> np.ndarray:
    """A 1x16 strip / 4x4 grid PNG, or a folder of NNN.png files -> [16, H, W, C] uint8."""
    from .layout import detect_layout, split_grid, split_strip

    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.glob("*.png") if p.stem.isdigit())
        if len(files) != view_count:
            raise ValueError(f"{path} must hold {view_count} views named 000.png..{view_count - 1:03d}.png, "
                             f"found {len(files)}")
        return np.stack([np.asarray(Image.open(f)) for f in files])
    image = torch.from_numpy(np.asarray(Image.open(path)).copy())[None]
    splitter = split_strip if detect_layout(image, view_count) == "strip" else split_grid
    return splitter(image, view_count).numpy()


def comfyui_model_dirs() -> list[Path]:
    """ComfyUI/models/syncdreamer of the ComfyUI this pack sits in, or of $COMFYUI_ROOT."""
    dirs = []
    if os.environ.get(COMFYUI_ENV):
        dirs.append(Path(os.environ[COMFYUI_ENV]) / "models" / "syncdreamer")
    pack = Path(__file__).resolve().parent.parent
    if pack.parent.name == "custom_nodes":
        dirs.append(pack.parent.parent / "models" / "syncdreamer")
    return dirs


def find_checkpoint() -> Path | None:
    """$SYNCDREAMER_CHECKPOINT, else the official file (or any checkpoint) in ComfyUI's
    ``models/syncdreamer`` folder."""
    if os.environ.get(CHECKPOINT_ENV):
        path = Path(os.environ[CHECKPOINT_ENV])
        if not path.is_file():
            raise FileNotFoundError(f"${CHECKPOINT_ENV} points to {path}, which is not a file")
        return path
    for folder in comfyui_model_dirs():
        if not folder.is_dir():
            continue
        found = sorted(p for p in folder.iterdir() if p.suffix.lower() in CHECKPOINT_SUFFIXES and p.is_file())
        preferred = [p for p in found if p.stem == Path(OFFICIAL_FILENAME).stem]
        if preferred or found:
            return (preferred or found)[0]
    return None


def missing_checkpoint_message() -> str:
    places = ", ".join(str(p) for p in comfyui_model_dirs()) or "ComfyUI/models/syncdreamer/"
    return (
        f"No SyncDreamer checkpoint found. Download {OFFICIAL_SOURCE} and either put it in {places} "
        f"or set {CHECKPOINT_ENV}=/path/to/{OFFICIAL_FILENAME} (a converted .safetensors works too)."
    )


def view_file_names(sample_count: int, prefix: str = "") -> list[str]:
    """What ``write_views`` writes: a strip and a grid per sample, then the prepared input."""
    return [f"{prefix}{i}{suffix}" for i in range(sample_count) for suffix in (".png", "-grid.png")] + [f"{prefix}input.png"]


def write_views(result, output: Path, prefix: str = "", claim=None) -> list[Path]:
    """One 1x16 strip (as the reference writes) and one 4x4 grid per sample, and the prepared input."""
    from .layout import compose_grid, compose_strip

    written = []
    flat = result.views.reshape(-1, *result.views.shape[2:])
    strips, grids = compose_strip(flat), compose_grid(flat)
    names = view_file_names(result.views.shape[0], prefix)
    for i in range(result.views.shape[0]):
        written.append(save_image(views_to_uint8(strips[i]), output / names[2 * i], claim))
        written.append(save_image(views_to_uint8(grids[i]), output / names[2 * i + 1], claim))
    save_image(views_to_uint8(torch.from_numpy(result.prepared.image)), output / names[-1], claim)
    return written


def progress_bar(description: str):
    """A step callback (done, total) that draws a tqdm bar."""
    from tqdm import tqdm

    bar = None

    def callback(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, desc=description, unit="step")
        bar.update(done - bar.n)
        if done >= total:
            bar.close()

    return callback
