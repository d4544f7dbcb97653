"""Headless command line: ``python -m syncdreamer_core {demo,generate,convert,...}``."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

from . import constants as C


def _progress(total_desc: str):
    bar = None

    def callback(step: int, total: int, latents, x0) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, desc=total_desc, unit="step")
        bar.update(1)
        if step + 1 == total:
            bar.close()

    return callback


def write_views(result, output: Path, prefix: str = "") -> list[Path]:
    """One 1x16 strip (as the reference writes) and one 4x4 grid per sample."""
    from .grid import compose_grid, compose_strip
    from .io import save_image, views_to_uint8

    written = []
    flat = result.views.reshape(-1, *result.views.shape[2:])
    strips, grids = compose_strip(flat), compose_grid(flat)
    for i in range(result.views.shape[0]):
        written.append(save_image(views_to_uint8(strips[i]), output / f"{prefix}{i}.png"))
        written.append(save_image(views_to_uint8(grids[i]), output / f"{prefix}{i}-grid.png"))
    save_image(views_to_uint8(torch.from_numpy(result.prepared.image)), output / f"{prefix}input.png")
    return written


def cmd_generate(args) -> int:
    from PIL import Image

    from .io import find_checkpoint, missing_checkpoint_message
    from .pipeline import SyncDreamerPipeline

    checkpoint = Path(args.ckpt) if args.ckpt else find_checkpoint()
    if checkpoint is None or not checkpoint.is_file():
        print(missing_checkpoint_message() if checkpoint is None else
              f"checkpoint not found: {checkpoint}. " + missing_checkpoint_message(), file=sys.stderr)
        return 2
    print(f"loading {checkpoint} ...")
    pipe = SyncDreamerPipeline.from_checkpoint(checkpoint, args.dtype, args.device, args.num_heads,
                                               args.batch_view_num, args.weight_dtype)
    result = pipe(Image.open(args.input), args.elevation, args.crop_size, sample_count=args.sample_num,
                  steps=args.steps, cfg_scale=args.cfg_scale, eta=args.eta, seed=args.seed,
                  scheduler=args.scheduler, callback=_progress("SyncDreamer"))
    for path in write_views(result, Path(args.output)):
        print(path)
    return 0


def cmd_convert(args) -> int:
    from .checkpoint import convert_checkpoint

    dst = Path(args.output) if args.output else Path(args.checkpoint).with_suffix(".safetensors")
    if args.trust_pickled_code:
        print("WARNING: --trust-pickled-code runs the pickled code inside the file; use it only for files "
              "from a source you trust.", file=sys.stderr)
    info = convert_checkpoint(args.checkpoint, dst, args.dtype, args.trust_pickled_code, args.num_heads)
    print(f"wrote {dst} ({info['bytes'] / 2**30:.2f} GiB, {info['tensors']} tensors, "
          f"{info['dropped']} unused CLIP text weights dropped)")
    return 0


def cmd_demo(args) -> int:
    from .demo import run_demo

    return run_demo(Path(args.output), steps=args.steps, seed=args.seed, device=args.device,
                    reconstruct=not args.no_mesh)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m syncdreamer_core",
                                     description="SyncDreamer: one image -> 16 consistent views -> mesh.")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="run the whole pipeline on a bundled example")
    demo.add_argument("--output", default="output/demo")
    demo.add_argument("--steps", type=int, default=None, help="denoising steps (default: 50 with the real "
                      "checkpoint, 10 with the random stand-in)")
    demo.add_argument("--seed", type=int, default=C.DEFAULT_SEED)
    demo.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    demo.add_argument("--no-mesh", action="store_true", help="skip the mesh reconstruction")
    demo.set_defaults(func=cmd_demo)

    gen = sub.add_parser("generate", help="generate 16 views from an RGBA image")
    gen.add_argument("--ckpt", help="checkpoint (.ckpt or .safetensors); default: $SYNCDREAMER_CHECKPOINT "
                     "or ComfyUI/models/syncdreamer")
    gen.add_argument("--input", required=True, help="RGBA image (alpha = object mask) or an object on white")
    gen.add_argument("--output", required=True, help="folder for <i>.png strips and <i>-grid.png grids")
    gen.add_argument("--elevation", type=float, required=True, help="input view elevation in degrees")
    gen.add_argument("--crop-size", type=int, default=C.DEFAULT_CROP_SIZE, help="-1 or object size in pixels")
    gen.add_argument("--sample-num", type=int, default=1)
    gen.add_argument("--cfg-scale", type=float, default=C.DEFAULT_CFG)
    gen.add_argument("--steps", type=int, default=C.DEFAULT_STEPS)
    gen.add_argument("--eta", type=float, default=C.DEFAULT_ETA)
    gen.add_argument("--seed", type=int, default=C.DEFAULT_SEED)
    gen.add_argument("--scheduler", choices=("ddim", "dpmpp_2m"), default="ddim")
    gen.add_argument("--batch-view-num", type=int, default=C.DEFAULT_BATCH_VIEW_NUM)
    gen.add_argument("--dtype", choices=("fp32", "fp16", "bf16"), default="fp32")
    gen.add_argument("--weight-dtype", choices=("fp32", "fp16", "bf16"), default=None,
                     help="store the network's weights in this dtype, computing in --dtype "
                          "(fp16 with fp32 halves the memory on a CPU)")
    gen.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    gen.add_argument("--num-heads", type=int, default=None, help="UNet attention heads (released model: 8)")
    gen.set_defaults(func=cmd_generate)

    conv = sub.add_parser("convert", help="convert a checkpoint to (fp16) .safetensors")
    conv.add_argument("checkpoint")
    conv.add_argument("--output", help="default: the checkpoint path with .safetensors")
    conv.add_argument("--dtype", choices=("fp32", "fp16", "bf16"), default="fp16")
    conv.add_argument("--num-heads", type=int, default=None)
    conv.add_argument("--trust-pickled-code", action="store_true",
                      help="read a pickle that weights-only loading refuses (runs its code: trusted files only)")
    conv.set_defaults(func=cmd_convert)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    started = time.perf_counter()
    try:
        code = args.func(args)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except (ValueError, TypeError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if code == 0:
        print(json.dumps({"command": args.command, "seconds": round(time.perf_counter() - started, 1)}))
    return code
