"""Time and memory of one synchronized denoising step (B instances x 16 views, CFG).

    python bench/bench_sampler.py --size small
    python bench/bench_sampler.py --size full --batch-view-num 8 16
    python bench/bench_sampler.py --size full --device cuda --dtype fp16 bf16
    python bench/bench_sampler.py --size full --weight-dtype fp16   # fp16 storage, fp32 compute
    python bench/bench_sampler.py --size full --dtype fp32 bf16 --ddim-error small

First the machine: its CPU features (native bf16/fp16 or not) and the measured matmul rate of
each dtype (2048^3, this process's threads). Each configuration then runs in a fresh subprocess
so that its peak memory (RSS on the CPU, max allocated on CUDA) is its own, and prints one JSON
object: step time, memory, the step's FLOPs (torch's FLOP formulas, counted per dtype:
``flop_share_by_dtype`` shows what ran in which precision), FLOP rate, every copy the
step makes (``copies_per_step``: casts and layout changes, count and MB written per dtype
pair, as torch's profiler counts ``aten::copy_``) and, on a CPU, the step time the Sampler
would have told before the run (``estimated_step_seconds``). ``--ddim-error SIZE``
adds the relative error of a whole 50-step DDIM run of that network size against fp32 for each
dtype. Weights are random: speed and memory do not depend on their values.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def config_for(size: str):
    from syncdreamer_core.network.config import SyncDreamerConfig

    return {"full": SyncDreamerConfig.official, "small": SyncDreamerConfig.small, "tiny": SyncDreamerConfig.tiny}[size]()


def build_model(size: str, dtype: str, device: str, weight_dtype: str | None = None):
    """A randomly initialised network (fan-in scaled weights, unit norm scales) with its
    weights stored in ``weight_dtype`` (default ``dtype``) and computing in ``dtype``."""
    from syncdreamer_core.network.memory_format import use_preferred_memory_format
    from syncdreamer_core.weights.checkpoint import build_network, resolve_dtype
    from syncdreamer_core.weights.official_layout import random_checkpoint
    from syncdreamer_core.weights.storage import store_weights_as

    config = config_for(size)
    storage = resolve_dtype(weight_dtype or dtype)
    state = random_checkpoint(config, vae=None, clip=None, dtype=storage)
    model = build_network(state, config, storage, device)
    del state
    model = store_weights_as(model, storage, resolve_dtype(dtype))
    return use_preferred_memory_format(model, device, resolve_dtype(dtype)), config  # as the loader does


def peak_memory_mb(device: str) -> float:
    import torch

    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker(args) -> dict:
    import torch

    from syncdreamer_core.conditioning import Conditioning
    from syncdreamer_core.diffusion.denoiser import SyncDenoiser

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.route_without_amx:
        from syncdreamer_core import hardware

        flags = hardware.cpu_flags()
        hardware.cpu_flags = lambda: frozenset(f for f in flags if not f.startswith("amx"))
    started = time.perf_counter()
    model, config = build_model(args.size, args.dtype, args.device, args.weight_dtype)
    build_seconds = time.perf_counter() - started
    g = torch.Generator().manual_seed(0)
    B = args.batch
    cond = Conditioning(torch.randn(B, 1, 768, generator=g), torch.randn(B, 4, 32, 32, generator=g),
                        torch.full((B,), 0.5))
    x = torch.randn(B, 16, 4, 32, 32, generator=g)
    t = torch.full((B,), 500, dtype=torch.long)
    denoiser = SyncDenoiser(model, args.batch_view_num)
    if args.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    times = []
    eps = None
    for _ in range(args.warmup + args.repeats):
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        eps = denoiser(x, t, cond, args.cfg)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    times = times[args.warmup:]
    from syncdreamer_core.accounting import Accounting, count_copies

    device_type = torch.device(args.device).type
    with Accounting(devices=(device_type,)) as counter:
        denoiser(x, t, cond, args.cfg)
    flops = sum(counter.ledger.flops.values())
    flop_share = {dtype: round(share, 4) for dtype, share in counter.ledger.flop_share(device_type).items()}
    result = {
        "size": args.size, "params_M": round(sum(p.numel() for p in model.parameters()) / 1e6, 1),
        "device": args.device, "dtype": args.dtype,
        "weight_dtype": args.weight_dtype or args.dtype, "batch": B, "views": 16, "cfg": args.cfg,
        "batch_view_num": args.batch_view_num, "threads": torch.get_num_threads(),
        **({"route": "without AMX"} if args.route_without_amx else {}),
        "step_seconds_median": round(statistics.median(times), 3), "step_seconds_all": [round(s, 3) for s in times],
        "steps50_minutes": round(statistics.median(times) * 50 / 60, 2),
        "peak_memory_MB": round(peak_memory_mb(args.device), 1), "build_seconds": round(build_seconds, 1),
        "step_GFLOP": round(flops / 1e9, 1), "GFLOPs": round(flops / statistics.median(times) / 1e9, 2),
        "flop_share_by_dtype": flop_share,
        # every copy the step makes, casts and layout changes, by dtype pair
        "copies_per_step": count_copies(lambda: denoiser(x, t, cond, args.cfg)).summary(),
    }
    if device_type == "cpu":  # what the Sampler tells before a run, beside what the step took
        from syncdreamer_core.wait import estimate_step_seconds

        result["estimated_step_seconds"] = round(estimate_step_seconds(config, args.dtype, args.weight_dtype,
                                                                       args.batch_view_num, args.cfg != 1), 3)
    if args.compare_fp32 and (args.dtype != "fp32" or (args.weight_dtype or "fp32") != "fp32"):
        reference, _ = build_model(args.size, "fp32", args.device)
        eps32 = SyncDenoiser(reference, args.batch_view_num)(x, t, cond, args.cfg).float()
        result["max_abs_diff_vs_fp32"] = float((eps.float() - eps32).abs().max())
        result["rel_l2_vs_fp32"] = float((eps.float() - eps32).norm() / eps32.norm())
    return result


def matmul_rates(device: str, size: int = 2048) -> dict:
    """GFLOP/s of one size^3 matrix product per dtype (the best of a few)."""
    import torch

    from syncdreamer_core.weights.checkpoint import resolve_dtype

    rates = {}
    for name in ("fp32", "bf16", "fp16"):
        a = torch.randn(size, size, dtype=resolve_dtype(name), device=device)
        b = torch.randn(size, size, dtype=resolve_dtype(name), device=device)
        best = float("inf")
        for _ in range(2):
            t0 = time.perf_counter()
            a @ b
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            best = min(best, time.perf_counter() - t0)
        rates[name] = round(2 * size**3 / best / 1e9, 1)
    return rates


def ddim_error(size: str, dtype: str, device: str, steps: int = 50) -> float:
    """Relative L2 distance of a whole DDIM run in ``dtype`` to the same run in fp32."""
    import torch

    from syncdreamer_core.conditioning import Conditioning
    from syncdreamer_core.diffusion.denoiser import SyncDenoiser
    from syncdreamer_core.diffusion.sampling import sample

    g = torch.Generator().manual_seed(0)
    cond = Conditioning(torch.randn(1, 1, 768, generator=g), torch.randn(1, 4, 32, 32, generator=g),
                        torch.full((1,), 0.5))
    runs = {}
    for name in ("fp32", dtype):
        model, _ = build_model(size, name, device)
        runs[name] = sample(SyncDenoiser(model, 16), cond, steps, 2.0, 1.0, "ddim", 7).float()
    return float((runs[dtype] - runs["fp32"]).norm() / runs["fp32"].norm())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=("full", "small", "tiny"), default="small")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", nargs="+", default=["fp32"], choices=("fp32", "fp16", "bf16"))
    parser.add_argument("--weight-dtype", choices=("fp32", "fp16", "bf16"), default=None,
                        help="store the weights in this dtype and compute in --dtype (default: the same)")
    parser.add_argument("--batch-view-num", nargs="+", type=int, default=[8])
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--cfg", type=float, default=2.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--compare-fp32", action="store_true", help="also print the max difference to fp32")
    parser.add_argument("--ddim-error", choices=("tiny", "small", "full"), default=None,
                        help="also the error of a whole 50-step DDIM run of this size against fp32, per --dtype")
    parser.add_argument("--no-machine", action="store_true", help="skip the CPU features and matmul rates")
    parser.add_argument("--route-without-amx", action="store_true",
                        help="take the route of a CPU with AVX512_BF16 but no AMX (e.g. AMD Zen 4: attention in "
                             "fp32): its casts and copies; the time stays this CPU's")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        args.dtype, args.batch_view_num = args.dtype[0], args.batch_view_num[0]
        print(json.dumps(worker(args)))
        return
    if not args.no_machine:
        import torch

        from syncdreamer_core.hardware import cpu_report

        if args.threads:
            torch.set_num_threads(args.threads)
        print(json.dumps({"machine": cpu_report(), "threads": torch.get_num_threads(),
                          "matmul_2048_GFLOPs": matmul_rates(args.device)}), flush=True)
    for dtype in args.dtype:
        if args.ddim_error and dtype != "fp32":
            print(json.dumps({"ddim_50_steps_size": args.ddim_error, "dtype": dtype,
                              "rel_l2_vs_fp32": round(ddim_error(args.ddim_error, dtype, args.device), 5)}), flush=True)
        for bvn in args.batch_view_num:
            command = [sys.executable, __file__, "--worker", "--size", args.size, "--device", args.device,
                       "--dtype", dtype, "--batch-view-num", str(bvn), "--batch", str(args.batch),
                       "--cfg", str(args.cfg), "--repeats", str(args.repeats), "--warmup", str(args.warmup),
                       "--threads", str(args.threads),
                       *(["--route-without-amx"] if args.route_without_amx else []),
                       *(["--compare-fp32"] if args.compare_fp32 else []),
                       *(["--weight-dtype", args.weight_dtype] if args.weight_dtype else [])]
            done = subprocess.run(command, capture_output=True, text=True, env=os.environ.copy())
            if done.returncode:
                print(json.dumps({"dtype": dtype, "batch_view_num": bvn, "error": done.stderr.strip()[-2000:]}))
            else:
                print(done.stdout.strip().splitlines()[-1], flush=True)


if __name__ == "__main__":
    main()
