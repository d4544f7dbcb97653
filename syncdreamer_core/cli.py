"""Headless command line: ``python -m syncdreamer_core {demo,generate,convert}``.

Every argument and both ends of the run (a readable, preparable input image; a
writable output folder) are checked before the model is loaded, so a mistake costs
seconds, not a 50-step run.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

from . import defaults
from .recon.formats import MESH_FORMATS, SIZE_OF


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


def _load_input(path: str, crop_size: int):
    from .files import read_image
    from .preprocess import prepare_input

    image = read_image(path, "--input")
    prepare_input(image, crop_size=crop_size)  # refuses unusable inputs now, not after loading
    return image


def warn_emulated_half(device: str, dtype: str) -> None:
    from .hardware import emulated_half_warning

    warning = emulated_half_warning(device, dtype)
    if warning:
        print(f"WARNING: {warning} (use --dtype fp32, and --weight-dtype fp16 to halve the memory)", file=sys.stderr)


def print_faster_dtype(device: str, dtype: str) -> None:
    """Say so when fp32 runs on a CPU that computes bf16 natively (1.7-3x faster there)."""
    from .hardware import recommended_cpu_dtype

    if dtype == "fp32" and str(device).startswith("cpu") and recommended_cpu_dtype() == "bf16":
        print("this CPU computes bf16 natively: --dtype bf16 (or auto) samples 1.7-3x faster than fp32",
              file=sys.stderr)


def cmd_generate(args) -> int:
    from .diffusion.schedule import steps_run
    from .files import find_checkpoint, missing_checkpoint_message, progress_bar, view_file_names, write_views
    from .outputs import OutputClaim
    from .pipeline import SyncDreamerPipeline
    from .weights.checkpoint import check_device, resolve_dtype

    image = _load_input(args.input, args.crop_size)
    output = Path(args.output)
    check_device(args.device, resolve_dtype(args.dtype))
    warn_emulated_half(args.device, args.dtype)
    checkpoint = Path(args.ckpt) if args.ckpt else find_checkpoint()
    if checkpoint is None or not checkpoint.exists():
        print(missing_checkpoint_message() if checkpoint is None else
              f"checkpoint not found: {checkpoint}. " + missing_checkpoint_message(), file=sys.stderr)
        return 2
    if checkpoint.is_dir():
        raise ValueError(f"--ckpt {checkpoint} is a folder; give the checkpoint file itself (e.g. "
                         f"{checkpoint / 'syncdreamer-pretrain.ckpt'})")
    names = view_file_names(args.sample_num) + (["latents.safetensors"] if args.save_latents else [])
    with OutputClaim([output / name for name in names], args.overwrite) as claim:
        print(f"loading {checkpoint} ...")
        pipe = SyncDreamerPipeline.from_checkpoint(checkpoint, args.dtype, args.device, args.num_heads,
                                                   args.batch_view_num, args.weight_dtype)
        args.steps_run = steps_run(args.steps)  # both samplers run the official DDIM timesteps
        if args.steps_run != args.steps:
            print(f"{args.steps} steps run as {args.steps_run}: the official DDIM timesteps for {args.steps} (1000 is not a "
                  "multiple of it)", file=sys.stderr)
        wait = pipe.cpu_wait(args.steps, args.sample_num, args.cfg_scale)
        if wait is not None:
            print(f"sampling on the CPU: {wait.describe()}", file=sys.stderr)
            print_faster_dtype(args.device, args.dtype)
        result = pipe(image, args.elevation, args.crop_size, sample_count=args.sample_num, steps=args.steps,
                      cfg_scale=args.cfg_scale, eta=args.eta, seed=args.seed, sampler=args.sampler,
                      callback=progress_bar("SyncDreamer"))
        for path in write_views(result, output, claim=claim):
            print(path)
        if args.save_latents:
            from safetensors.torch import save_file

            print(claim.write(output / "latents.safetensors",
                              lambda target: save_file({"latents": result.latents.contiguous()}, str(target))))
    return 0


def _views_per_pass(text: str) -> int:
    return 0 if text == "auto" else _int_in(1, 16, "--batch-view-num")(text)


def _elevation_setting(text: str):
    if text == "auto":
        return "auto"
    return _float_in(-90, 90, "--elevation")(text)


def _resolve_checkpoint(path: str | None) -> Path:
    from .files import find_checkpoint, missing_checkpoint_message

    checkpoint = Path(path) if path else find_checkpoint()
    if checkpoint is None:
        raise ValueError(missing_checkpoint_message())
    if checkpoint.is_dir():
        raise ValueError(f"--ckpt {checkpoint} is a folder; give the checkpoint file itself (e.g. "
                         f"{checkpoint / 'syncdreamer-pretrain.ckpt'})")
    if not checkpoint.is_file():
        raise ValueError(f"checkpoint not found: {checkpoint}. " + missing_checkpoint_message())
    return checkpoint


def cmd_batch(args) -> int:
    """Everything that can be checked is checked before Ray starts: the inputs and lists,
    the output folder, the workflow and its image node, the checkpoint's file and layout."""
    import os

    from .batch.cluster import check_address
    from .batch.items import expand_inputs
    from .batch.report import REPORT
    from .outputs import check_writable_folder

    if args.address or os.environ.get("RAY_ADDRESS"):
        check_address(args.address or os.environ["RAY_ADDRESS"])
    items = expand_inputs(args.inputs)
    output = Path(args.output)
    check_writable_folder(output, "--output folder")
    if args.comfyui:
        from .batch.engine import print_line
        from .batch.servers import run_on_servers

        if not args.workflow or not args.image_node:
            raise ValueError("--comfyui needs --workflow API.json and --image-node ID (the LoadImage node to feed)")
        servers = [s.strip() for s in args.comfyui.split(",") if s.strip()]
        if not servers:
            raise ValueError(f"--comfyui {args.comfyui!r} names no server (host:port[,host:port...])")
        report = run_on_servers(items, servers, Path(args.workflow), args.image_node, output,
                                retry_failed=args.retry_failed, address=args.address, on_item=print_line,
                                max_file_mb=args.max_file_mb, file_seconds=args.file_seconds)
    else:
        report = _batch_on_ray(args, items, output)
    print(report.summary())
    print(f"report: {output / REPORT}")
    if report.failure_line() and not report.interrupted:
        print(report.failure_line(), file=sys.stderr)
    return report.exit_code()


def _batch_on_ray(args, items, output: Path):
    from .batch.engine import BatchInterrupted, EngineOptions, print_line, run_batch
    from .batch.items import BatchSettings
    from .weights.checkpoint import check_device, inspect_checkpoint, resolve_dtype

    check_device(args.device, resolve_dtype(args.dtype))
    warn_emulated_half(args.device, args.dtype)
    checkpoint = _resolve_checkpoint(args.ckpt).resolve()
    inspect_checkpoint(checkpoint, args.num_heads)
    settings = BatchSettings(
        checkpoint=str(checkpoint), elevation=args.elevation, crop_size=args.crop_size,
        seed=args.seed, steps=args.steps, cfg_scale=args.cfg_scale, eta=args.eta, sampler=args.sampler,
        candidates=args.candidates, recon=args.recon, resolution=args.resolution, max_faces=args.faces,
        texture=args.texture, turntable=args.turntable, save_latents=args.save_latents, dtype=args.dtype,
        weight_dtype=args.weight_dtype, batch_view_num=args.batch_view_num, device=args.device,
        num_heads=args.num_heads, formats=tuple(dict.fromkeys(args.format)), print_size_mm=args.size_mm,
        size_of=args.size_of.replace("-", " "), flat_base=args.flat_base)
    options = EngineOptions(address=args.address, sampler_actors=args.sampler_actors,
                            sampler_threads=args.sampler_threads, recon_cpus=args.recon_cpus,
                            object_store_mb=args.object_store_mb, progress=not args.no_progress)
    try:
        return run_batch(items, settings, output, options, args.retry_failed, on_item=print_line)
    except BatchInterrupted as stopped:
        return stopped.args[0]


def cmd_download(args) -> int:
    from .weights.checkpoint import convert_checkpoint, default_conversion_path
    from .weights.download import OFFICIAL, DownloadError, default_folder, download_checkpoint, hub_endpoint

    try:
        print(f"{OFFICIAL.filename} ({OFFICIAL.size / 1e9:.2f} GB) from {hub_endpoint(args.endpoint)}", file=sys.stderr)
        path = download_checkpoint(args.to, args.endpoint, progress=not args.no_progress)
    except DownloadError as error:
        print(f"error: {error}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        part = (Path(args.to) if args.to else default_folder()) / f"{OFFICIAL.filename}.part"
        kept = part.stat().st_size if part.exists() else 0
        print(f"\nstopped at {kept:,} of {OFFICIAL.size:,} bytes" + (f"; they are kept in {part}: the same command "
              "continues from there" if kept else ""), file=sys.stderr)
        return 130
    print(f"checked: {path} is the official checkpoint ({path.stat().st_size:,} bytes, SHA-256 as published)")
    if args.safetensors:
        converted = default_conversion_path(path, "fp16")
        if converted.exists():
            print(f"{converted} exists already")
        else:
            info = convert_checkpoint(path, converted, "fp16")
            print(f"wrote {converted} ({info['bytes'] / 1e9:.2f} GB, fp16); {path.name} may be deleted")
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


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Every option's help ends with its default, unless the help already says it."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "default" in text or action.default in (None, argparse.SUPPRESS) or not action.option_strings:
            return text
        if action.nargs == 0:  # a flag
            return f"{text} (default: {'on' if action.default else 'off'})"
        return f"{text} (default: %(default)s)"


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """Where the checkpoint comes from and how the network runs."""
    parser.add_argument("--ckpt", help="checkpoint (.ckpt or .safetensors); default: $SYNCDREAMER_CHECKPOINT, else "
                        "the one in ComfyUI/models/syncdreamer")
    parser.add_argument("--batch-view-num", type=_views_per_pass, default=defaults.BATCH_VIEW_NUM,
                        help="views run through the network at once (lower saves memory; same result), or auto: the "
                        "largest that fits in the device's free memory")
    parser.add_argument("--dtype", choices=("fp32", "fp16", "bf16", "auto"), default="fp32",
                        help="compute precision (on a GPU: fp16 or bf16; on a CPU: see the README); auto: on a CPU as the "
                        "loader node's auto, bf16 where it has bf16 instructions, else fp32; on a GPU bf16 where "
                        "supported, else fp16")
    parser.add_argument("--weight-dtype", choices=("fp32", "fp16", "bf16"), default=None,
                        help="store the network's weights in this dtype, computing in --dtype (fp16 with fp32 halves "
                             "the memory on a CPU); default: as --dtype")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps; default: cuda when available")
    parser.add_argument("--num-heads", type=_int_in(1, 64, "--num-heads"), default=None,
                        help="UNet attention heads; default: from the checkpoint, 8 for the released model")


def add_sampling_options(parser: argparse.ArgumentParser) -> None:
    """The sampler's settings, the same for one image and for a batch."""
    from .diffusion.sampling import SAMPLERS
    from .diffusion.schedule import MAX_STEPS

    parser.add_argument("--cfg-scale", type=_float_in(0, 100, "--cfg-scale"), default=defaults.CFG,
                        help="classifier-free guidance scale (the authors use 2.0, also 1.5)")
    parser.add_argument("--steps", type=_int_in(1, MAX_STEPS, "--steps"), default=defaults.STEPS,
                        help="denoising steps (the reference: 50)")
    parser.add_argument("--eta", type=_float_in(0, 10, "--eta"), default=defaults.ETA,
                        help="DDIM noise: 1 as the reference, 0 deterministic")
    parser.add_argument("--seed", type=_int_in(0, defaults.MAX_SEED, "--seed"), default=defaults.SEED,
                        help="random seed; candidate k uses seed + k")
    parser.add_argument("--sampler", "--scheduler", choices=SAMPLERS, default="ddim",
                        help="ddim: the reference sampler; dpmpp_2m: DPM-Solver++(2M), close to 50 DDIM steps in about 20")


def build_parser() -> argparse.ArgumentParser:
    from .batch.report import EXIT_CODES
    from .diffusion.schedule import MAX_STEPS

    parser = argparse.ArgumentParser(prog="python -m syncdreamer_core",
                                     description="SyncDreamer: one image -> 16 consistent views -> mesh.")
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=text, description=text, formatter_class=_HelpFormatter)

    demo = command("demo", "run the whole pipeline on a bundled example")
    demo.add_argument("--output", default="output/demo", help="folder for the views and the mesh")
    demo.add_argument("--steps", type=_int_in(1, MAX_STEPS, "--steps"), default=None,
                      help="denoising steps (default: 50 with the real checkpoint, 10 with the random stand-in)")
    demo.add_argument("--seed", type=_int_in(0, defaults.MAX_SEED, "--seed"), default=defaults.SEED,
                      help="random seed")
    demo.add_argument("--device", default=None, help="cpu, cuda, mps; default: cuda when available")
    demo.add_argument("--no-mesh", action="store_true", help="skip the mesh reconstruction")
    demo.set_defaults(func=cmd_demo)

    gen = command("generate", "generate the 16 views of the object in one image")
    gen.add_argument("--input", required=True, help="an RGBA image whose alpha marks the object, or an object on a "
                     "plain white background (JPEG, PNG, ...; EXIF orientation is applied)")
    gen.add_argument("--output", required=True, help="folder for <i>.png strips, <i>-grid.png grids and input.png")
    gen.add_argument("--overwrite", action="store_true", help="replace existing output files")
    gen.add_argument("--elevation", type=_float_in(-90, 90, "--elevation"), required=True,
                     help="elevation of the input view in degrees (a rough value in [-10, 40] is enough)")
    gen.add_argument("--crop-size", type=_crop_size, default=defaults.CROP_SIZE,
                     help="object size in pixels in the 256x256 input, or -1 to keep the framing")
    gen.add_argument("--sample-num", type=_int_in(1, 64, "--sample-num"), default=1,
                     help="candidates; candidate k is the single run with seed + k")
    gen.add_argument("--save-latents", action="store_true",
                     help="also write latents.safetensors (every candidate's 16 latents, scaled as the network sees them)")
    add_sampling_options(gen)
    add_model_options(gen)
    gen.set_defaults(func=cmd_generate)

    batch = command("batch", "many images to textured meshes on Ray (resumable; one machine or a cluster)")
    batch.epilog = "exit codes:\n" + "\n".join(f"  {code:<4} {text}" for code, text in EXIT_CODES.items())
    batch.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders, glob patterns, or CSV/JSONL "
                       "lists (column image, optional elevation, crop_size, seed)")
    batch.add_argument("--output", required=True, help="folder for every item's outputs and report.jsonl (on a "
                       "cluster: a folder every node sees)")
    batch.add_argument("--elevation", type=_elevation_setting, default="auto", help="input elevation in degrees, or "
                       "auto: generate at 30, estimate from the views, regenerate when the estimate differs")
    batch.add_argument("--crop-size", type=_crop_size, default=defaults.CROP_SIZE,
                       help="object size in pixels in the 256x256 input, or -1 to keep the framing")
    batch.add_argument("--candidates", type=_int_in(1, 16, "--candidates"), default=1,
                       help="candidates sampled per item; the most consistent one is meshed")
    batch.add_argument("--recon", choices=("fast", "quality"), default="fast", help="reconstruction method")
    batch.add_argument("--resolution", type=_int_in(32, 320, "--resolution"), default=128,
                       help="voxels per side of the mesh grid")
    batch.add_argument("--faces", type=_int_in(0, 2_000_000, "--faces"), default=30000,
                       help="decimate to at most this many faces (0 keeps all)")
    batch.add_argument("--texture", type=int, choices=(0, 512, 1024, 2048), default=1024,
                       help="baked texture size (0: vertex colours)")
    batch.add_argument("--turntable", type=_int_in(0, 360, "--turntable"), default=0,
                       help="frames of a turntable WEBP (0: none)")
    batch.add_argument("--save-latents", action="store_true", help="also keep every candidate's latents")
    batch.add_argument("--format", nargs="+", choices=MESH_FORMATS, default=["glb"], metavar="FORMAT",
                       help=f"mesh files to write, model.<format> ({', '.join(MESH_FORMATS)}; default glb); stl and "
                       "3mf are for printing: a closed solid in millimetres")
    batch.add_argument("--size-mm", type=_float_in(1, 2000, "--size-mm"), default=100.0,
                       help="STL/3MF: the printed height (or longest side) in millimetres; every record reports the "
                       "volume and size at it")
    batch.add_argument("--size-of", choices=[s.replace(" ", "-") for s in SIZE_OF], default="height",
                       help="what --size-mm measures")
    batch.add_argument("--flat-base", action="store_true",
                       help="STL/3MF: cut the object just above its lowest point so it stands flat")
    batch.add_argument("--retry-failed", action="store_true", help="redo only the items that failed before")
    batch.add_argument("--address", default=None, help="join a Ray cluster from one of its nodes: auto, or HEAD_IP:PORT "
                       "(the port of `ray start --head --port`); default: $RAY_ADDRESS, else a local Ray started for "
                       "this command")
    batch.add_argument("--sampler-actors", type=_int_in(1, 256, "--sampler-actors"), default=None,
                       help="sampler actors (each loads the checkpoint); default: one per GPU, else 1")
    batch.add_argument("--sampler-threads", type=_int_in(1, 1024, "--sampler-threads"), default=None,
                       help="torch threads per CPU sampler actor; default: the cores divided among the actors")
    batch.add_argument("--recon-cpus", type=_float_in(0.1, 64, "--recon-cpus"), default=1.0,
                       help="CPUs reserved per reconstruction task")
    batch.add_argument("--object-store-mb", type=_int_in(64, 1 << 20, "--object-store-mb"), default=None,
                       help="object store of the local Ray; default: 1024")
    batch.add_argument("--no-progress", action="store_true", help="no progress bars (log files)")
    batch.add_argument("--comfyui", default=None, help="run --workflow on these ComfyUI servers instead "
                       "(host:port[,host:port...])")
    batch.add_argument("--workflow", default=None, help="with --comfyui: an API-format workflow")
    batch.add_argument("--image-node", default=None, help="with --comfyui: id of the LoadImage node to feed")
    batch.add_argument("--max-file-mb", type=_float_in(0.001, 1 << 20, "--max-file-mb"), default=2048,
                       help="with --comfyui: largest output file accepted from a server (MiB)")
    batch.add_argument("--file-seconds", type=_float_in(1, 86400, "--file-seconds"), default=600,
                       help="with --comfyui: longest download of one output file (seconds)")
    add_sampling_options(batch)
    add_model_options(batch)
    batch.set_defaults(func=cmd_batch)

    down = command("download", "download the official checkpoint (5.57 GB) with resume, and check it")
    down.add_argument("--to", default=None, help="folder to put it in; default: ComfyUI's models/syncdreamer when the "
                      "pack sits in ComfyUI's custom_nodes, else ./models/syncdreamer")
    down.add_argument("--safetensors", action="store_true",
                      help="also convert it to an fp16 .safetensors beside it (2.7 GB; loads faster, no pickle)")
    down.add_argument("--endpoint", default=None, help="a Hugging Face mirror; default: $HF_ENDPOINT, else "
                      "https://huggingface.co")
    down.add_argument("--no-progress", action="store_true", help="no progress bar")
    down.set_defaults(func=cmd_download)

    conv = command("convert", "convert a checkpoint to .safetensors (fp16 by default)")
    conv.add_argument("checkpoint", help="the .ckpt (or .safetensors) to convert; it is never overwritten")
    conv.add_argument("--output", help="default: X.ckpt -> X.safetensors, X.safetensors -> X-<dtype>.safetensors")
    conv.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    conv.add_argument("--dtype", choices=("fp32", "fp16", "bf16"), default="fp16", help="dtype of the stored weights")
    conv.add_argument("--num-heads", type=_int_in(1, 64, "--num-heads"), default=None,
                      help="UNet attention heads to record; default: 8, as the released model")
    conv.add_argument("--trust-pickled-code", action="store_true",
                      help="read a pickle that weights-only loading refuses (runs its code: trusted files only)")
    conv.set_defaults(func=cmd_convert)
    return parser


def _choose_auto_dtype(args) -> None:
    """--dtype auto as a dtype, chosen once here (every batch worker then computes alike)."""
    if getattr(args, "dtype", None) != "auto":
        return
    from .hardware import recommended_dtype
    from .weights.checkpoint import check_device

    check_device(args.device)
    args.dtype = recommended_dtype(args.device)
    print(f"--dtype auto: {args.dtype} on {args.device}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    from .diffusion.sampling import SamplingError

    args = build_parser().parse_args(argv)
    if getattr(args, "device", "absent") is None:
        args.device = _default_device()
    started = time.perf_counter()
    try:
        _choose_auto_dtype(args)
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
        summary = {"command": args.command, "seconds": round(time.perf_counter() - started, 1)}
        if getattr(args, "steps_run", None) is not None:
            summary.update(steps=args.steps, steps_run=args.steps_run)
        print(json.dumps(summary))
    return code
