"""The README's "GPU memory" table: what the pack tells before a run, for the full-size
network (weights + one denoising step), the VAE decoding 16 views, and quality
reconstruction.

    python bench/bench_memory.py            # prints the Markdown table (a few minutes on a CPU)

Sampling and decoding are estimated on the meta device (``syncdreamer_core/memory.py``:
the tensors alive at each moment, counted; the same figure the sampler uses to choose
batch_view_num). Quality reconstruction is measured on the simulated GPU of the tests
(``tests/simulated_cuda.py``: fake CUDA tensors, a CUDA build of torch needed), whose
counts the test suite checks against the meta estimate and the CPU's real allocations.
Candidates are sampled one after another, so 4 candidates need what 1 needs (plus
their 64 KB latents each).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

GIB = 2**30


def quality_peak(resolution: int = 96, steps: int = 3) -> float:
    from simulated_cuda import SimulatedCuda

    from syncdreamer_core.files import EXAMPLES, load_views
    from syncdreamer_core.recon import reconstruct_quality

    views = load_views(EXAMPLES / "chicken-views.png")
    with SimulatedCuda() as sim:
        reconstruct_quality(views, steps=steps, resolution=resolution, mesh_resolution=128, device="cuda")
    return sim.ledger.peak["cuda"] / GIB


def main() -> int:
    from syncdreamer_core.memory import GPU_CONTEXT_BYTES, GPU_OVERHEAD, VIEW_CHOICES, decode_peak, sampling_peak
    from syncdreamer_core.network.config import SyncDreamerConfig

    config = SyncDreamerConfig.official()
    started = time.perf_counter()
    print("| batch_view_num | fp16 | bf16 | fp32 | fp16 weights, fp32 compute |")
    print("| --- | --- | --- | --- | --- |")
    for views in VIEW_CHOICES:
        cells = []
        for dtype, weights in (("fp16", None), ("bf16", None), ("fp32", None), ("fp32", "fp16")):
            estimate = sampling_peak(config, dtype, weights, views)
            cells.append(f"{estimate.peak / GIB:.2f} GB ({estimate.on_gpu() / GIB:.1f})")
        print(f"| {views} | " + " | ".join(cells) + " |", flush=True)
    weights = {d: sampling_peak(config, d, None, 16).weights / GIB for d in ("fp16", "fp32")}
    decode = {d: decode_peak(d).peak / GIB for d in ("fp16", "bf16", "fp32")}
    print(f"\nweights: {weights['fp16']:.2f} GB in fp16/bf16, {weights['fp32']:.2f} GB in fp32")
    print("VAE decoding 16 views (8 at a time): " + ", ".join(f"{d} {v:.2f} GB" for d, v in decode.items()))
    try:
        print(f"quality reconstruction (field 96^3, mesh 128): {quality_peak():.2f} GB")
    except RuntimeError as error:  # a CPU-only torch: no simulated GPU
        print(f"quality reconstruction: not measured ({error})")
    print(f"\n(in brackets: on a GPU, x{GPU_OVERHEAD} for workspaces and fragmentation + "
          f"{GPU_CONTEXT_BYTES / GIB:.1f} GB of CUDA context; {time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
