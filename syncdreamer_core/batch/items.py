"""What a batch processes and where each item's outputs live.

Inputs are image files, folders (their images, sorted), glob patterns, and CSV or JSONL
lists whose rows name an image (column ``image``, or ``path``/``file``) with optional
per-item ``elevation``, ``crop_size`` and ``seed``. Relative paths in a list are relative
to the list.

An item's outputs are keyed by its input's content hash and a fingerprint of every
setting that changes them, so a rerun finds finished work, and a changed setting makes
new outputs beside the old ones.
"""

from __future__ import annotations

import csv
import glob
import hashlib
import json
import math
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..defaults import MAX_SEED
from ..preprocess import MIN_CROP_SIZE

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif")
LIST_SUFFIXES = (".csv", ".jsonl")
PATH_COLUMNS = ("image", "path", "file")
#: Per-item settings a list may give, and their ranges (as the command line's options).
ITEM_COLUMNS = ("elevation", "crop_size", "seed")
RANGES = {"elevation": (-90.0, 90.0), "crop_size": (-1, 256), "seed": (0, MAX_SEED)}


class BatchInputError(ValueError):
    """An input argument or list that cannot be read at all (one bad item is not this:
    it is recorded and the others go on)."""


@dataclass
class BatchItem:
    """One object to turn into 3D. ``elevation`` None means the batch's setting (a number
    or "auto"); ``problem`` says why an item named in a list cannot even be looked at."""

    path: str
    elevation: float | None = None
    crop_size: int | None = None
    seed: int | None = None
    source: str = ""
    problem: str | None = None
    content_hash: str = field(default="", repr=False)

    def name(self) -> str:
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(self.path).stem)[:40].strip("._") or "item"
        return stem

    def hash_content(self) -> str:
        """sha256 of the file's bytes (of its path when it cannot be read: the item fails
        with a message, under a stable key)."""
        if not self.content_hash:
            digest = hashlib.sha256()
            try:
                with open(self.path, "rb") as handle:
                    for block in iter(lambda: handle.read(1 << 20), b""):
                        digest.update(block)
            except OSError:
                digest.update(b"unreadable:" + os.fsencode(self.path))
            self.content_hash = digest.hexdigest()
        return self.content_hash


def _number(value, name: str, where: str, integer: bool = False, text: bool = False):
    """A list's value for ``name``: None when empty, else a finite number (an integer for
    ``integer``). ``text``: the list stores text (CSV), so "20" is read as 20; in JSONL a
    number must be a JSON number, and a boolean is never one."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    kind = "an integer" if integer else "a number"
    if isinstance(value, bool) or (isinstance(value, str) and not text) or not isinstance(value, (str, int, float)):
        shown = json.dumps(value) if not isinstance(value, str) else repr(value)
        raise BatchInputError(f"{where}, column {name}: must be {kind}, got {shown} ({type(value).__name__})")
    try:
        if integer:
            number = int(value.strip()) if isinstance(value, str) else value
            if isinstance(number, float):
                if not number.is_integer():
                    raise ValueError
                number = int(number)
        else:
            number = float(value)
    except ValueError:
        raise BatchInputError(f"{where}, column {name}: must be {kind}, got {value!r}") from None
    if not integer and not math.isfinite(number):
        raise BatchInputError(f"{where}, column {name}: must be finite, got {value!r}")
    low, high = RANGES[name]
    if not (low <= number <= high) or (name == "crop_size" and 0 <= number < MIN_CROP_SIZE):
        allowed = f"-1 or {MIN_CROP_SIZE}..{high}" if name == "crop_size" else f"{low:g}..{high:g}"
        raise BatchInputError(f"{where}, column {name}: must be in {allowed}, got {value!r}")
    return number


def _row_item(row: dict, base: Path, where: str, text: bool) -> BatchItem:
    path = next((row[c] for c in PATH_COLUMNS if row.get(c)), None)
    if not path or not isinstance(path, str):
        raise BatchInputError(f"{where}: no image path (a column named {', '.join(PATH_COLUMNS)}, holding text)")
    path = path.strip()
    full = Path(path) if Path(path).is_absolute() else base / path
    item = BatchItem(str(full), source=where)
    problems = []
    for name in ITEM_COLUMNS:
        try:
            setattr(item, name, _number(row.get(name), name, where, integer=name != "elevation", text=text))
        except BatchInputError as error:
            problems.append(str(error))
    if problems:
        item.problem = "; ".join(problems)  # this row fails; the others go on
    elif not full.is_file():
        item.problem = f"{full} does not exist or is not a file (named in {where})"
    return item


def read_list(path: Path) -> list[BatchItem]:
    """The items of a CSV (with a header row) or JSONL list."""
    base = path.parent
    items = []
    try:
        if path.suffix.lower() == ".csv":
            with path.open(newline="", encoding="utf-8-sig") as handle:
                reader = csv.DictReader(handle)
                if not reader.fieldnames or not set(PATH_COLUMNS) & {f.strip() for f in reader.fieldnames}:
                    raise BatchInputError(f"{path}: the first row must name the columns, one of them "
                                          f"{' / '.join(PATH_COLUMNS)} (optional: {', '.join(ITEM_COLUMNS)})")
                for number, row in enumerate(reader, start=2):
                    items.append(_row_item({k.strip(): v for k, v in row.items() if k}, base, f"{path} line {number}",
                                           text=True))
        else:
            with path.open(encoding="utf-8") as handle:
                for number, line in enumerate(handle, start=1):
                    if not line.strip():
                        continue
                    try:
                        row = json.loads(line)
                    except json.JSONDecodeError as error:
                        raise BatchInputError(f"{path} line {number} is not JSON ({error.msg})") from None
                    if isinstance(row, str):
                        row = {"image": row}
                    if not isinstance(row, dict):
                        raise BatchInputError(f"{path} line {number}: expected an object like "
                                              '{"image": "a.png", "elevation": 20}')
                    items.append(_row_item(row, base, f"{path} line {number}", text=False))
    except UnicodeDecodeError as error:
        bad = error.object[error.start:error.start + 1]
        raise BatchInputError(f"the list {path} is not a UTF-8 text file (byte {error.start} is {bad!r}): give a CSV or "
                              "JSONL list of image paths") from None
    except csv.Error as error:
        raise BatchInputError(f"the list {path} is not a readable CSV file ({error}): give a CSV or JSONL list of "
                              "image paths") from None
    except OSError as error:
        raise BatchInputError(f"cannot read the list {path}: {error.strerror or error}") from None
    return items


def expand_inputs(inputs: list[str]) -> list[BatchItem]:
    """Every item the arguments name, in order, each image once."""
    items: list[BatchItem] = []
    for argument in inputs:
        path = Path(argument)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise BatchInputError(f"the folder {path} holds no images ({', '.join(IMAGE_SUFFIXES)})")
            items += [BatchItem(str(p), source=str(path)) for p in found]
        elif path.is_file() and path.suffix.lower() in LIST_SUFFIXES:
            items += read_list(path)
        elif path.is_file():
            items.append(BatchItem(str(path), source="arguments"))
        elif glob.has_magic(argument):
            found = sorted(p for p in glob.glob(argument, recursive=True) if Path(p).suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise BatchInputError(f"the pattern {argument!r} matches no image")
            items += [BatchItem(p, source=argument) for p in found]
        else:
            raise BatchInputError(f"{argument} is not an image, a folder, a pattern or a CSV/JSONL list "
                                  "(it does not exist)")
    unique, seen = [], set()
    for item in items:
        key = (os.path.realpath(item.path), item.elevation, item.crop_size, item.seed, item.problem)
        if key not in seen:
            seen.add(key)
            unique.append(item)
    if not unique:
        raise BatchInputError("no input images given")
    return unique


@dataclass(frozen=True)
class BatchSettings:
    """Everything that decides a batch item's outputs, plus where the model runs."""

    checkpoint: str
    elevation: float | str = "auto"
    crop_size: int = 200
    seed: int = 6033
    steps: int = 50
    cfg_scale: float = 2.0
    eta: float = 1.0
    sampler: str = "ddim"
    candidates: int = 1
    recon: str = "fast"
    resolution: int = 128
    max_faces: int = 30000
    texture: int = 1024
    turntable: int = 0
    save_latents: bool = False
    dtype: str = "fp32"
    weight_dtype: str | None = None
    batch_view_num: int = 8
    device: str = "cpu"
    num_heads: int | None = None
    formats: tuple[str, ...] = ("glb",)
    print_size_mm: float = 100.0
    size_of: str = "height"
    flat_base: bool = False

    #: Settings added after batches were first made: in an item's key only when they differ
    #: from these defaults, so the folders of earlier batches stay theirs.
    KEYED_WHEN_SET = {"formats": ["glb"], "print_size_mm": 100.0, "size_of": "height", "flat_base": False}

    #: How the work is spread, not what it computes (results agree to float rounding; the
    #: record keeps them). Bit-equal to ``generate`` at the same values and thread count.
    UNKEYED = ("batch_view_num", "device")

    def for_item(self, item: BatchItem) -> dict:
        """The settings of one item: the list's values where it gives them."""
        values = {k: v for k, v in asdict(self).items() if k not in self.UNKEYED and k != "checkpoint"}
        values["formats"] = list(values["formats"])
        for name, default in self.KEYED_WHEN_SET.items():
            if values[name] == default:
                del values[name]
        for name in ITEM_COLUMNS:
            if getattr(item, name) is not None:
                values[name] = getattr(item, name)
        return values

    def checkpoint_identity(self) -> str:
        stat = os.stat(self.checkpoint)
        return f"{Path(self.checkpoint).name}:{stat.st_size}:{int(stat.st_mtime)}"


def fingerprint(values: dict, checkpoint_identity: str) -> str:
    text = json.dumps({**values, "checkpoint": checkpoint_identity}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def item_key(item: BatchItem, settings: BatchSettings, checkpoint_identity: str) -> str:
    """``<name>-<content hash>-<settings fingerprint>``: the item's folder in the output."""
    return f"{item.name()}-{item.hash_content()[:12]}-{fingerprint(settings.for_item(item), checkpoint_identity)[:8]}"
