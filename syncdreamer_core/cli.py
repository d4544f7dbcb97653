"""Headless command line: ``python -m syncdreamer_core {demo,generate,convert}``.

Every argument and both ends of the run (a readable, preparable input image; a
writable output folder) are checked before the model is loaded, so a mistake costs
seconds, not a 50-step run.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

from . import defaults


def _int_in(low: int, high: int, name: str):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be an integer, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{name} must be in {low}..{high}, got {value}")
        return value

    return parse


def _float_in(low: float, high: float, name: str):
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a number, got {text!r}") from None
        if not math.isfinite(value) or not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{name} must be a number in {low:g}..{high:g}, got {text}")
        return value

    return parse


def _crop_size(text: str) -> int:
    from .preprocess import MIN_CROP_SIZE

    value = _int_in(-1, 256, "--crop-size")(text)
    if value != -1 and value < MIN_CROP_SIZE:
        raise argparse.ArgumentTypeError(f"--crop-size must be -1 or {MIN_CROP_SIZE}..256, got {value}")
    return value


def check_output_folder(output: Path, names: list[str], overwrite: bool) -> None:
    """A folder we can create or write into, without clobbering files unless told."""
    if output.exists() and not output.is_dir():
        raise ValueError(f"--output {output} is a file; give a folder")
    existing = [output / n for n in names if (output / n).exists()]
    if existing and not overwrite:
        raise ValueError(f"{existing[0]} already exists (and {len(existing) - 1} more); pass --overwrite or choose "
                         "another --output")
    folder = output
    while not folder.exists():
        folder = folder.parent
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"cannot write into {folder} (permission denied): choose another --output")


def _load_input(path: str, crop_size: int):
    from .files import read_image
    from .preprocess import prepare_input

    image = read_image(path, "--input")
    prepare_input(image, crop_size=crop_size)  # refuses unusable inputs now, not after loading
    return image


def cmd_generate(args) -> int:
    from .files import find_checkpoint, missing_checkpoint_message, progress_bar, write_views
    from .pipeline import SyncDreamerPipeline
    from .weights.checkpoint import check_device, resolve_dtype

    image = _load_input(args.input, args.crop_size)
    names = [f"{i}{suffix}" for i in range(args.sample_num) for suffix in (".png", "-grid.png")] + ["input.png"]
    check_output_folder(Path(args.output), names, args.overwrite)
    check_device(args.device, resolve_dtype(args.dtype))
    checkpoint = Path(args.ckpt) if args.ckpt else find_checkpoint()
    if checkpoint is None or not checkpoint.is_file():
        print(missing_checkpoint_message() if checkpoint is None else
              f"checkpoint not found: {checkpoint}. " + missing_checkpoint_message(), file=sys.stderr)
        return 2
    print(f"loading {checkpoint} ...")
    pipe = SyncDreamerPipeline.from_checkpoint(checkpoint, args.dtype, args.device, args.num_heads,
                                               args.batch_view_num, args.weight_dtype)
    result = pipe(image, args.elevation, args.crop_size, sample_count=args.sample_num, steps=args.steps,
                  cfg_scale=args.cfg_scale, eta=args.eta, seed=args.seed, sampler=args.sampler,
                  callback=progress_bar("SyncDreamer"))
    for path in write_views(result, Path(args.output)):
        print(path)
    return 0


def cmd_convert(args) -> int:
    from .weights.checkpoint import convert_checkpoint, default_conversion_path

    dst = Path(args.output) if args.output else default_conversion_path(args.checkpoint, args.dtype)
    if args.trust_pickled_code:
        print("WARNING: --trust-pickled-code runs the pickled code inside the file; use it only for files "
              "from a source you trust.", file=sys.stderr)
    info = convert_checkpoint(args.checkpoint, dst, args.dtype, args.trust_pickled_code, args.num_heads,
                              overwrite=args.overwrite)
    print(f"wrote {dst} ({info['bytes'] / 2**30:.2f} GiB, {info['tensors']} tensors, "
          f"{info['dropped']} unused CLIP text weights dropped)")
    return 0


def cmd_demo(args) -> int:
    from .demo import run_demo
    from .weights.checkpoint import check_device

    check_device(args.device)
    return run_demo(Path(args.output), steps=args.steps, seed=args.seed, device=args.device,
                    reconstruct=not args.no_mesh)


def _default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def build_parser() -> argparse.ArgumentParser:
    from .diffusion.sampling import SAMPLERS
    from .diffusion.schedule import MAX_STEPS

    steps = _int_in(1, MAX_STEPS, "--steps")
    seed = _int_in(0, defaults.MAX_SEED, "--seed")
    parser = argparse.ArgumentParser(prog="python -m syncdreamer_core",
                                     description="SyncDreamer: one image -> 16 consistent views -> mesh.")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="run the whole pipeline on a bundled example")
    demo.add_argument("--output", default="output/demo")
    demo.add_argument("--steps", type=steps, default=None, help="denoising steps (default: 50 with the real "
                      "checkpoint, 10 with the random stand-in)")
    demo.add_argument("--seed", type=seed, default=defaults.SEED)
    demo.add_argument("--device", default=None, help="cpu, cuda, mps (default: cuda when available)")
    demo.add_argument("--no-mesh", action="store_true", help="skip the mesh reconstruction")
    demo.set_defaults(func=cmd_demo)

    gen = sub.add_parser("generate", help="generate 16 views from an RGBA image")
    gen.add_argument("--ckpt", help="checkpoint (.ckpt or .safetensors); default: $SYNCDREAMER_CHECKPOINT "
                     "or ComfyUI/models/syncdreamer")
    gen.add_argument("--input", required=True, help="RGBA image (alpha = object mask) or an object on white")
    gen.add_argument("--output", required=True, help="folder for <i>.png strips and <i>-grid.png grids")
    gen.add_argument("--overwrite", action="store_true", help="replace existing output files")
    gen.add_argument("--elevation", type=_float_in(-90, 90, "--elevation"), required=True,
                     help="input view elevation in degrees")
    gen.add_argument("--crop-size", type=_crop_size, default=defaults.CROP_SIZE,
                     help="object size in pixels in the 256x256 input, or -1 to keep the framing")
    gen.add_argument("--sample-num", type=_int_in(1, 64, "--sample-num"), default=1,
                     help="candidates; candidate k is the single run with seed + k")
    gen.add_argument("--cfg-scale", type=_float_in(0, 100, "--cfg-scale"), default=defaults.CFG)
    gen.add_argument("--steps", type=steps, default=defaults.STEPS)
    gen.add_argument("--eta", type=_float_in(0, 10, "--eta"), default=defaults.ETA)
    gen.add_argument("--seed", type=seed, default=defaults.SEED)
    gen.add_argument("--sampler", "--scheduler", choices=SAMPLERS, default="ddim")
    gen.add_argument("--batch-view-num", type=_int_in(1, 16, "--batch-view-num"), default=defaults.BATCH_VIEW_NUM)
    gen.add_argument("--dtype", choices=("fp32", "fp16", "bf16"), default="fp32")
    gen.add_argument("--weight-dtype", choices=("fp32", "fp16", "bf16"), default=None,
                     help="store the network's weights in this dtype, computing in --dtype "
                          "(fp16 with fp32 halves the memory on a CPU)")
    gen.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps (default: cuda when available)")
    gen.add_argument("--num-heads", type=_int_in(1, 64, "--num-heads"), default=None,
                     help="UNet attention heads (released model: 8)")
    gen.set_defaults(func=cmd_generate)

    conv = sub.add_parser("convert", help="convert a checkpoint to (fp16) .safetensors")
    conv.add_argument("checkpoint")
    conv.add_argument("--output", help="default: X.ckpt -> X.safetensors, X.safetensors -> X-<dtype>.safetensors")
    conv.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    conv.add_argument("--dtype", choices=("fp32", "fp16", "bf16"), default="fp16")
    conv.add_argument("--num-heads", type=_int_in(1, 64, "--num-heads"), default=None)
    conv.add_argument("--trust-pickled-code", action="store_true",
                      help="read a pickle that weights-only loading refuses (runs its code: trusted files only)")
    conv.set_defaults(func=cmd_convert)
    return parser


def main(argv: list[str] | None = None) -> int:
    from .diffusion.sampling import SamplingError

    args = build_parser().parse_args(argv)
    if getattr(args, "device", "absent") is None:
        args.device = _default_device()
    started = time.perf_counter()
    try:
        code = args.func(args)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except (ValueError, TypeError, FileNotFoundError, SamplingError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"error: {error.strerror or error} ({error.filename or ''})", file=sys.stderr)
        return 2
    if code == 0:
        print(json.dumps({"command": args.command, "seconds": round(time.perf_counter() - started, 1)}))
    return code
