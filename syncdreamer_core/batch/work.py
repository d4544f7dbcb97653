"""The stages of one batch item as plain functions on a row (a dict of strings, numbers and
numpy arrays, which is what travels between Ray Data operators):

- ``prepare``: read the image (EXIF applied, as everywhere), prepare it (CPU);
- ``Sampler``: holds the network; the candidates' 16 views, with the elevation given or
  estimated and regenerated (``--elevation auto``) (the GPU stage);
- ``finish``: rank the candidates, reconstruct, bake, export and write every output,
  the record last (CPU).

An item whose stage fails carries ``error`` through the remaining stages and is
recorded as failed; the other items go on. Every file is written under a temporary name
and renamed when complete, so a folder with a record is a finished item.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

from .. import __version__, defaults
from .items import BatchSettings

RECORD = "record.json"
FAILED = "failed.json"
#: Output files of a finished item (the turntable and latents only when asked for).
OUTPUT_FILES = {"mesh": "model.glb", "strip": "views.png", "grid": "views-grid.png", "input": "input.png",
                "turntable": "turntable.webp", "latents": "latents.safetensors"}


def row_settings(row: dict) -> dict:
    return {**BatchSettings.KEYED_WHEN_SET, **json.loads(row["settings"])}


def fail(row: dict, stage: str, error: BaseException) -> dict:
    message = str(error) if isinstance(error, (ValueError, OSError)) else f"{type(error).__name__}: {error}"
    row.update(error=message or type(error).__name__, failed_stage=stage)
    if not isinstance(error, (ValueError, OSError)):
        row["traceback"] = "".join(traceback.format_exception(error))[-4000:]
    return row


def timed(row: dict, stage: str, started: float) -> None:
    times = json.loads(row.get("times") or "{}")
    times[stage] = round(time.perf_counter() - started, 3)
    row["times"] = json.dumps(times)


# ---------------------------------------------------------------- prepare (CPU)

def prepare(row: dict) -> dict:
    from ..files import read_image
    from ..preprocess import prepare_input

    started = time.perf_counter()
    row = dict(row)
    if row.get("error"):
        return row
    try:
        settings = row_settings(row)
        prepared = prepare_input(read_image(row["path"], "image"), crop_size=int(settings["crop_size"]))
        row["image"], row["mask"] = prepared.image, prepared.mask
    except Exception as error:  # noqa: BLE001 - one bad item is recorded, the others go on
        return fail(row, "prepare", error)
    timed(row, "prepare", started)
    return row


# ---------------------------------------------------------------- sample (GPU, an actor)

class SamplerStartError(RuntimeError):
    """The sampler could not load the checkpoint: no item can be sampled. Ray reports it as
    text only, so the message travels behind a marker the driver finds it by."""

    MARKER = "[the sampler could not start] "

    @classmethod
    def message_in(cls, text: str) -> str | None:
        return text.split(cls.MARKER, 1)[1].splitlines()[0] if cls.MARKER in text else None


class Sampler:
    """A loaded checkpoint that samples items one after another (a Ray Data actor: it loads
    once and serves the whole batch)."""

    def __init__(self, settings: BatchSettings):
        from ..pipeline import SyncDreamerPipeline

        self.settings = settings
        try:
            self.pipe = SyncDreamerPipeline.from_checkpoint(settings.checkpoint, settings.dtype, settings.device,
                                                            settings.num_heads, settings.batch_view_num,
                                                            settings.weight_dtype)
        except (ValueError, OSError) as error:
            raise SamplerStartError(SamplerStartError.MARKER + " ".join(str(error).split())) from None

    def __call__(self, row: dict) -> dict:
        started = time.perf_counter()
        row = dict(row)
        if row.get("error"):
            return row
        try:
            self._sample(row)
        except Exception as error:  # noqa: BLE001
            return fail(row, "sample", error)
        row["sampled_by"] = f"{platform.node()}:{os.getpid()}"
        row["sampled_on"] = _ray_node()
        timed(row, "sample", started)
        return row

    def _sample(self, row: dict) -> None:
        from ..files import views_to_uint8
        from ..preprocess import PreparedInput

        settings = row_settings(row)
        prepared = PreparedInput(np.asarray(row["image"], np.float32), np.asarray(row["mask"], np.float32))
        elevation = settings["elevation"]
        estimate = None
        if elevation == "auto":
            first = self._generate(prepared, defaults.ELEVATION_DEG, settings)
            estimate = estimate_from(prepared.mask, views_to_uint8(first.views[0]))
            elevation = estimate["used_deg"]
            result = first if elevation == defaults.ELEVATION_DEG else self._generate(prepared, elevation, settings)
        else:
            result = self._generate(prepared, float(elevation), settings)
        row["views"] = views_to_uint8(result.views)
        if settings["save_latents"]:
            row["latents"] = result.latents.numpy()
        row["elevation_used"] = float(elevation)
        row["elevation_estimate"] = json.dumps(estimate)

    def _generate(self, prepared, elevation: float, settings: dict):
        return self.pipe.generate(prepared, elevation, int(settings["candidates"]), int(settings["steps"]),
                                  float(settings["cfg_scale"]), float(settings["eta"]), int(settings["seed"]),
                                  settings["sampler"])


def _ray_node() -> str | None:
    """The Ray node this runs on (None outside Ray)."""
    try:
        import ray

        return ray.get_runtime_context().get_node_id() if ray.is_initialized() else None
    except Exception:  # noqa: BLE001 - bookkeeping only
        return None


def estimate_from(mask: np.ndarray, views: np.ndarray) -> dict:
    """The elevation estimate from the first-guess views, and the elevation to use: the
    estimate when it is confident and far enough from the guess, else the guess."""
    from ..elevation import ElevationError, estimate_elevation

    guess = defaults.ELEVATION_DEG
    try:
        found = estimate_elevation(mask, views)
    except (ElevationError, ValueError) as error:
        return {"first_guess_deg": guess, "estimate_deg": None, "confidence": 0.0, "used_deg": guess,
                "note": f"no estimate ({error}); the first guess is used"}
    use = (found.confidence >= defaults.ELEVATION_MIN_CONFIDENCE
           and abs(found.elevation_deg - guess) > defaults.ELEVATION_REGENERATE_BEYOND_DEG)
    return {"first_guess_deg": guess, "estimate_deg": round(found.elevation_deg, 2),
            "confidence": round(found.confidence, 3), "used_deg": round(found.elevation_deg, 2) if use else guess}


# ---------------------------------------------------------------- finish (CPU)

def finish(row: dict, output: str) -> dict:
    """Rank, reconstruct, bake and write the item's outputs (record last), or record why
    it failed. Returns the report line as a row."""
    started = time.perf_counter()
    row = dict(row)
    folder = Path(output) / row["key"]
    if not row.get("error"):
        try:
            row["outputs"] = json.dumps(_write_outputs(row, folder))
        except Exception as error:  # noqa: BLE001
            fail(row, "reconstruct", error)
    timed(row, "finish", started)
    return _record(row, folder)


def _write_outputs(row: dict, folder: Path) -> dict:
    import torch

    from ..files import save_image
    from ..layout import compose_grid, compose_strip
    from ..outputs import atomic_write
    from ..recon import make_asset, reconstruct_fast, reconstruct_quality
    from ..recon.export import export_asset
    from ..recon.formats import PRINT_FORMATS
    from ..recon.printing import PrintError, for_print
    from ..recon.ranking import rank_candidates

    settings = row_settings(row)
    views = np.asarray(row["views"], np.uint8)  # [K, 16, H, W, 3]
    scores = []
    best = 0
    if len(views) > 1:
        ranking = rank_candidates(views.reshape(-1, *views.shape[2:]))
        best = ranking[0].index
        scores = [{"candidate": s.index, "score": None if s.unusable else round(s.score, 4),
                   "unusable": s.unusable} for s in ranking]
    row["chosen_candidate"], row["scores"] = best, json.dumps(scores)
    chosen = torch.from_numpy(views[best])
    written = {}
    written["strip"] = save_image(compose_strip(chosen)[0].numpy(), folder / OUTPUT_FILES["strip"])
    written["grid"] = save_image(compose_grid(chosen)[0].numpy(), folder / OUTPUT_FILES["grid"])
    written["input"] = save_image(np.round(np.asarray(row["image"]) * 255).astype(np.uint8), folder / OUTPUT_FILES["input"])
    if settings["save_latents"]:
        from safetensors.torch import save_file

        latents = torch.from_numpy(np.ascontiguousarray(row["latents"], np.float32))
        written["latents"] = atomic_write(folder / OUTPUT_FILES["latents"],
                                          lambda target: save_file({"latents": latents}, str(target)))
    started = time.perf_counter()
    if settings["recon"] == "quality":
        result = reconstruct_quality(views[best], mesh_resolution=int(settings["resolution"]), return_details=True)
    else:
        result = reconstruct_fast(views[best], resolution=int(settings["resolution"]), return_details=True)
    texture = int(settings["texture"]) or None
    asset = make_asset(result, texture, int(settings["max_faces"]) or None)
    row["reconstruct_s"] = round(time.perf_counter() - started, 3)
    metadata = {"generator": f"ComfyUI-SyncDreamer {__version__}", "syncdreamer_batch": json.dumps(
        {"input_sha256": row["content_hash"], "settings": settings})}
    printing = (float(settings["print_size_mm"]), settings["size_of"], bool(settings["flat_base"]))
    try:
        printed = for_print(asset, *printing, name="the mesh")
        row["print"] = json.dumps(printed[2].as_dict())
    except PrintError as error:
        if set(settings["formats"]) & set(PRINT_FORMATS):
            raise
        printed, row["print"] = None, json.dumps({"not_printable": str(error)})
    for file_format in settings["formats"]:
        name = "mesh" if file_format == "glb" else f"mesh_{file_format}"
        target = folder / f"model.{file_format}"
        if file_format == "obj":
            written[name] = _write_obj(asset, target)
        else:
            written[name] = atomic_write(target, lambda partial, f=file_format: export_asset(
                asset, partial, f, "y", metadata, *printing, printed))
    if int(settings["turntable"]) > 0:
        from PIL import Image

        from ..recon.turntable import turntable

        frames = turntable(asset, int(settings["turntable"]), size=256)
        images = [Image.fromarray(np.round(f * 255).astype(np.uint8)) for f in frames]
        written["turntable"] = atomic_write(folder / OUTPUT_FILES["turntable"], lambda target: images[0].save(
            target, format="WEBP", save_all=True, append_images=images[1:], duration=80, loop=0))
    return {name: path.name for name, path in written.items()}


def _write_obj(asset, target: Path) -> Path:
    """OBJ is three files (.obj, .mtl, texture .png) that name each other: written together in
    a scratch folder beside them, then moved in, the .obj last."""
    from ..recon.export import export_asset

    scratch = Path(tempfile.mkdtemp(prefix=".obj.", dir=target.parent))
    try:
        files = [Path(f) for f in export_asset(asset, scratch / target.name, "obj")]
        for file in sorted(files, key=lambda f: f.suffix == ".obj"):
            os.replace(file, target.parent / file.name)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


def versions() -> dict:
    import torch

    return {"syncdreamer": __version__, "torch": torch.__version__, "python": platform.python_version()}


def _record(row: dict, folder: Path) -> dict:
    from ..outputs import atomic_write

    failed = bool(row.get("error"))
    record = {
        "key": row["key"], "status": "failed" if failed else "done", "input": row["path"],
        "input_sha256": row["content_hash"], "settings": row_settings(row),
        "seed": row_settings(row)["seed"], "elevation_used": row.get("elevation_used"),
        "elevation_estimate": json.loads(row.get("elevation_estimate") or "null"),
        "chosen_candidate": row.get("chosen_candidate"), "candidate_scores": json.loads(row.get("scores") or "[]"),
        "times": json.loads(row.get("times") or "{}"), "outputs": json.loads(row.get("outputs") or "{}"),
        "sampled_by": row.get("sampled_by"), "sampled_on": row.get("sampled_on"),
        "print": json.loads(row.get("print") or "null"),
        "versions": versions(), "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if failed:
        record.update(message=row["error"], stage=row.get("failed_stage"), traceback=row.get("traceback"))
    text = json.dumps(record, indent=1, default=str) + "\n"
    atomic_write(folder / (FAILED if failed else RECORD), lambda target: target.write_text(text))
    if not failed and (folder / FAILED).exists():
        (folder / FAILED).unlink()  # an earlier failure of this item, now done
    return {"key": row["key"], "status": record["status"], "line": json.dumps(
        {k: record.get(k) for k in ("key", "status", "input", "message", "stage", "outputs", "times",
                                    "elevation_used", "chosen_candidate", "sampled_by", "print")}, default=str)}
