"""The GPU route in one call: speed, memory and numerics of the network, the VAE and the
reconstruction, written to one JSON file (and printed as it goes).

    python bench/gpu_check.py --out gpu_check.json                      # a CUDA machine, ~5 minutes
    python bench/gpu_check.py --device mps --out mps_check.json         # a Mac with Apple Silicon
    python bench/gpu_check.py --device cpu --size tiny --out check.json # anywhere (the test runs this)

On a bare machine: ``pip install torch`` (a CUDA build) and the pack's requirements
(``pip install --no-index --find-links wheels/ -r requirements.txt`` when the machine has
no internet), then this script. It measures, with random weights of the real sizes:

- the GPU's measured matmul peak (fp32, fp16, bf16; 8192^3) and its name;
- per dtype (fp32, fp16, bf16) and batch_view_num (16, 8): one synchronized denoising step
  (B=1, 16 views, cfg 2) and a whole sample (--sample-steps, default 50 DDIM steps),
  peak device memory measured beside the estimate the pack makes before a run
  (``memory.py``, the README's table), the step's FLOPs and their share per dtype, the
  FLOP rate against the measured bf16 peak, and the relative error of the sample against
  fp32;
- the SD VAE decoding 16 latents in each dtype: time, non-finite outputs (an fp16 VAE can
  overflow), error against fp32;
- fast and quality reconstruction of the bundled chicken views on the device (time).

Every section runs on its own: an error is recorded in the JSON and the rest goes on.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

DTYPES = ("fp32", "fp16", "bf16")


def synchronize(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()
    elif device.startswith("mps"):
        torch.mps.synchronize()


def timed(device: str, function, repeats: int = 1):
    synchronize(device)
    started = time.perf_counter()
    for _ in range(repeats):
        out = function()
    synchronize(device)
    return out, (time.perf_counter() - started) / repeats


def reset_peak(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    elif device.startswith("mps"):
        torch.mps.empty_cache()


def peak_gb(device: str) -> float | None:
    """The device's peak allocation since the last reset (MPS keeps no peak: what the
    driver holds now, after the work)."""
    import torch

    if device.startswith("cuda"):
        return round(torch.cuda.max_memory_allocated() / 2**30, 3)
    if device.startswith("mps"):
        return round(torch.mps.driver_allocated_memory() / 2**30, 3)
    return None


def machine(device: str) -> dict:
    import torch

    info = {"python": platform.python_version(), "torch": torch.__version__, "device": device,
            "cpu_capability": torch.backends.cpu.get_cpu_capability()}
    if device.startswith("cuda"):
        props = torch.cuda.get_device_properties(device)
        info.update(gpu=props.name, gpu_memory_GB=round(props.total_memory / 2**30, 1),
                    compute_capability=f"{props.major}.{props.minor}", cuda=torch.version.cuda,
                    bf16_supported=torch.cuda.is_bf16_supported(), hip=getattr(torch.version, "hip", None))
    elif device.startswith("mps"):
        info.update(mps_recommended_max_GB=round(torch.mps.recommended_max_memory() / 2**30, 1),
                    machine=platform.machine(), macos=platform.mac_ver()[0])
    return info


def matmul_peaks(device: str, size: int) -> dict:
    import torch

    from syncdreamer_core.weights.checkpoint import resolve_dtype

    out = {}
    for name in DTYPES:
        a = torch.randn(size, size, device=device, dtype=resolve_dtype(name))
        b = torch.randn(size, size, device=device, dtype=resolve_dtype(name))
        a @ b
        _, seconds = timed(device, lambda a=a, b=b: a @ b, repeats=5 if device.startswith("cuda") else 1)
        out[name] = round(2 * size**3 / seconds / 1e12, 3)
    return {"matmul_TFLOPs": out, "matmul_size": size}


def step_flops(denoiser, x, t, cond, device: str) -> tuple[float, dict]:
    """The step's FLOPs and their share per dtype (``accounting.py``)."""
    import torch

    from syncdreamer_core.accounting import Accounting

    kind = torch.device(device).type
    with Accounting(devices=(kind,)) as counter:
        denoiser(x, t, cond, 2.0)
    share = {dtype: round(value, 4) for dtype, value in counter.ledger.flop_share(kind).items()}
    return float(sum(counter.ledger.flops.values())), share


def network_section(size: str, device: str, dtype: str, batch_view_num: int, sample_steps: int,
                    peak_bf16: float | None, reference: dict) -> dict:
    import torch
    from bench_sampler import build_model

    from syncdreamer_core.conditioning import Conditioning
    from syncdreamer_core.diffusion.denoiser import SyncDenoiser
    from syncdreamer_core.diffusion.sampling import sample

    reset_peak(device)
    model, config = build_model(size, dtype, device)
    g = torch.Generator().manual_seed(0)
    cond = Conditioning(torch.randn(1, 1, 768, generator=g), torch.randn(1, 4, 32, 32, generator=g),
                        torch.full((1,), 0.5))
    x = torch.randn(1, 16, 4, 32, 32, generator=g)
    t = torch.full((1,), 500, dtype=torch.long)
    denoiser = SyncDenoiser(model, batch_view_num)
    denoiser(x, t, cond, 2.0)  # warm-up (kernels, allocator)
    _, step = timed(device, lambda: denoiser(x, t, cond, 2.0), repeats=3 if device.startswith("cuda") else 1)
    flops, flop_share = step_flops(denoiser, x, t, cond, device)
    latents, whole = timed(device, lambda: sample(denoiser, cond, sample_steps, 2.0, 1.0, "ddim", 7))
    latents = latents.float().cpu()
    params = sum(p.numel() for p in model.parameters())
    result = {"dtype": dtype, "batch_view_num": batch_view_num, "params_M": round(params / 1e6, 1),
              "step_s": round(step, 4), "sample_s": round(whole, 2), "sample_steps": sample_steps,
              "peak_GB": peak_gb(device), "step_TFLOP": round(flops / 1e12, 4), "flop_share_by_dtype": flop_share,
              "achieved_TFLOPs": round(flops / step / 1e12, 3), "finite": bool(torch.isfinite(latents).all())}
    from syncdreamer_core.memory import sampling_peak

    estimate = sampling_peak(config, dtype, None, batch_view_num)
    result["estimated_peak_GB"] = round(estimate.peak / 2**30, 3)  # counted tensors, as peak_GB counts them
    result["estimated_need_on_gpu_GB"] = round(estimate.on_gpu() / 2**30, 3)  # with workspaces and context
    if peak_bf16:
        result["share_of_bf16_matmul_peak"] = round(flops / step / 1e12 / peak_bf16, 3)
    key = (batch_view_num,)
    if dtype == "fp32":
        reference[key] = latents
    elif key in reference:
        result["sample_rel_err_vs_fp32"] = round(float((latents - reference[key]).norm() / reference[key].norm()), 5)
    return result


def vae_section(device: str, dtype: str, reference: dict, full_vae: bool) -> dict:
    import torch

    from syncdreamer_core.constants import VAE_SCALE_FACTOR
    from syncdreamer_core.weights.checkpoint import resolve_dtype
    from syncdreamer_core.weights.encoders import build_vae
    from syncdreamer_core.weights.official_layout import SMALL_VAE, VAELayout, vae_shapes

    layout = VAELayout() if full_vae else SMALL_VAE
    g = torch.Generator().manual_seed(1)
    state = {}
    for key, shape in vae_shapes(layout).items():
        if key.endswith("weight") and "norm" in key:
            state[key] = torch.ones(shape)
        elif len(shape) > 1:
            fan_in = int(torch.tensor(shape[1:]).prod())
            state[key] = torch.randn(shape, generator=g) * (2.0 / fan_in) ** 0.5  # activations grow as in a trained VAE
        else:
            state[key] = torch.zeros(shape)
    reset_peak(device)
    vae = build_vae(state, dtype=resolve_dtype(dtype), device=device)
    latents = torch.randn(16, 4, 32, 32, generator=g) * 5

    @torch.inference_mode()
    def decode():  # unclamped: an overflow must show, not be clamped to white
        return torch.cat([vae.decode(c.to(device=vae.device, dtype=vae.dtype) / VAE_SCALE_FACTOR).sample
                          for c in latents.split(8)])

    images, seconds = timed(device, decode)
    images = images.float().cpu()
    finite = torch.isfinite(images)
    result = {"dtype": dtype, "decode_16_s": round(seconds, 3), "nonfinite_values": int((~finite).sum()),
              "peak_GB": peak_gb(device), "full_size_vae": full_vae}
    if dtype == "fp32":
        reference["vae"] = images
    elif "vae" in reference and bool(finite.all()):
        result["rel_err_vs_fp32"] = round(float((images - reference["vae"]).norm() / reference["vae"].norm()), 5)
    return result


def recon_section(device: str, quality_steps: int) -> dict:
    from syncdreamer_core.files import EXAMPLES, load_views
    from syncdreamer_core.recon import make_asset, reconstruct_fast, reconstruct_quality

    views = load_views(EXAMPLES / "chicken-views.png")
    started = time.perf_counter()
    fast = reconstruct_fast(views, return_details=True)
    fast_s = time.perf_counter() - started
    started = time.perf_counter()
    quality = reconstruct_quality(views, steps=quality_steps, device=device, return_details=True)
    quality_s = time.perf_counter() - started
    started = time.perf_counter()
    asset = make_asset(quality, 1024, 30000)
    return {"fast_s": round(fast_s, 2), "fast_faces": len(fast.mesh.faces), "quality_s": round(quality_s, 2),
            "quality_steps": quality_steps, "bake_1024_s": round(time.perf_counter() - started, 2),
            "faces": len(asset.faces)}


def memory_estimates(size: str, views_list: list[int]) -> dict:
    """What the pack tells before a run (``memory.py``), to set beside what was measured."""
    from bench_sampler import config_for

    from syncdreamer_core.memory import decode_peak, sampling_peak

    config = config_for(size)
    return {"sampling_peak_GB": {dtype: {views: round(sampling_peak(config, dtype, None, views).peak / 2**30, 3)
                                         for views in views_list} for dtype in DTYPES},
            "vae_decode_16_peak_GB": {dtype: round(decode_peak(dtype).peak / 2**30, 3) for dtype in DTYPES}}


def run(args) -> dict:
    import torch

    report: dict = {"machine": machine(args.device), "errors": []}

    def section(name, function, *a):
        started = time.perf_counter()
        try:
            value = function(*a)
        except Exception as error:  # noqa: BLE001 - record it and go on
            report["errors"].append({"section": name, "error": f"{type(error).__name__}: {error}",
                                     "traceback": traceback.format_exc()[-3000:]})
            value = None
        print(json.dumps({"section": name, "seconds": round(time.perf_counter() - started, 1), "result": value},
                         default=str), flush=True)
        return value

    peaks = section("matmul", matmul_peaks, args.device, args.matmul_size) or {}
    report.update(peaks)
    peak_bf16 = (peaks.get("matmul_TFLOPs") or {}).get("bf16")
    dtypes = [d for d in args.dtypes if d != "bf16" or not args.device.startswith("cuda") or torch.cuda.is_bf16_supported()]
    report["memory_estimates"] = section("memory estimates", memory_estimates, args.size, args.estimate_views)
    references: dict = {}
    report["network"] = [r for r in (section(f"network {d} bvn {b}", network_section, args.size, args.device, d, b,
                                             args.sample_steps, peak_bf16, references)
                                     for b in args.batch_view_num for d in dtypes) if r]
    report["vae"] = [r for r in (section(f"vae {d}", vae_section, args.device, d, references, args.size != "tiny")
                                 for d in dtypes) if r]
    report["reconstruction"] = section("reconstruction", recon_section, args.device, args.quality_steps)
    return report


def main(argv: list[str] | None = None) -> int:
    import torch

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--size", choices=("full", "small", "tiny"), default="full")
    parser.add_argument("--dtypes", nargs="+", choices=DTYPES, default=list(DTYPES))
    parser.add_argument("--batch-view-num", nargs="+", type=int, default=[16, 8])
    parser.add_argument("--sample-steps", type=int, default=50)
    parser.add_argument("--quality-steps", type=int, default=800)
    parser.add_argument("--estimate-views", nargs="+", type=int, default=[16, 8, 4, 2, 1],
                        help="batch_view_num values of the memory estimates")
    parser.add_argument("--matmul-size", type=int, default=8192)
    parser.add_argument("--out", default="gpu_check.json")
    args = parser.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(f"error: --device {args.device}, but this torch ({torch.__version__}) sees no CUDA device; "
              "use --device cpu --size tiny to try the script here", file=sys.stderr)
        return 2
    if args.device.startswith("mps") and not torch.backends.mps.is_available():
        print(f"error: --device mps, but this torch ({torch.__version__}) sees no Metal device", file=sys.stderr)
        return 2
    started = time.perf_counter()
    report = run(args)
    report["total_s"] = round(time.perf_counter() - started, 1)
    Path(args.out).write_text(json.dumps(report, indent=1, default=str) + "\n")
    print(f"wrote {args.out} in {report['total_s']} s; {len(report['errors'])} section(s) failed")
    return 1 if report["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
