"""How long a run will take on a CPU, told before its first step and kept up to date.

One denoising step's FLOPs are counted on the meta device (the pass ``memory.sampling_peak``
makes anyway). This CPU's rate is measured on a piece of the network itself: a ResBlock and a
SpatialTransformer of its first level, at its channels, 32x32 latents and the step's batch, in
the run's dtype (about a second, once per process, dtype and thread count), so the mix of
convolutions, matrix products, attention, norms and casts is the network's and each CPU's
strengths count (bf16 instructions or not). Their quotient, times ``REST`` for the parts of a
step that run slower than that piece (the volume's 3D convolutions and sampling, the coarse
levels), is one step; times the network evaluations of the run it is the wait. Once steps have
run, their measured pace replaces the estimate.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass

import torch

#: A full step against its FLOPs at the probe's rate: 1.04 in fp32 and 1.10 in bf16 on a
#: 2-core Xeon with AMX (bench/bench_sampler.py --estimate prints both); one factor for all.
REST = 1.1
#: Probing takes at least this long (after a warm-up run).
PROBE_SECONDS = 0.5
#: One full-size step (16 views, cfg 2, batch_view_num 8) on 2-core CPUs, from bf16 with AMX
#: (this project's Xeon) to fp32 on AMD Zen 4 (bench/bench_sampler.py --size full).
CPU_STEP_SECONDS = (12.0, 47.0)
#: FLOP/s a GPU sustains on this network in fp16/bf16, from a mid-range consumer card to a
#: data-centre one. Assumed, not measured: bench/gpu_check.py measures a GPU's.
GPU_FLOP_RATES = (1e13, 1e14)


def step_flops(config, dtype, weight_dtype=None, batch_view_num: int = 8, cfg: bool = True) -> int:
    """FLOPs of one denoising step of one 16-view instance."""
    from .memory import sampling_peak

    return sum(count for _, _, count in sampling_peak(config, dtype, weight_dtype, batch_view_num, cfg).op_flops)


@functools.cache
def probe_rate(config, dtype: torch.dtype, batch: int, threads: int) -> float:
    """FLOP/s of the network's first-level ResBlock + SpatialTransformer on this CPU."""
    from .accounting import Accounting
    from .network.attention import SpatialTransformer
    from .network.memory_format import use_preferred_memory_format
    from .network.unet import ResBlock

    channels = config.model_channels
    generator = torch.Generator().manual_seed(0)
    with torch.inference_mode():
        block = ResBlock(channels, 4 * channels).eval().to(dtype)
        attention = SpatialTransformer(channels, config.num_heads, channels // config.num_heads,
                                       config.transformer_depth, config.context_dim).eval().to(dtype)
        for module in (block, attention):  # laid out as the loader lays out the network
            use_preferred_memory_format(module, "cpu", dtype)
        x = torch.randn(batch, channels, 32, 32, generator=generator).to(dtype)
        emb = torch.randn(batch, 4 * channels, generator=generator).to(dtype)
        context = torch.randn(batch, 1, config.context_dim, generator=generator).to(dtype)

        def run():
            return attention(block(x, emb), context)

        counted = Accounting(devices=("cpu",))
        with counted:
            run()  # also the warm-up: kernel selection, first-touch allocation
        flops = sum(counted.ledger.flops.values())
        count, start = 0, time.perf_counter()
        while count < 2 or time.perf_counter() - start < PROBE_SECONDS:
            run()
            count += 1
        return flops * count / (time.perf_counter() - start)


def estimate_step_seconds(config, dtype, weight_dtype=None, batch_view_num: int = 8, cfg: bool = True) -> float:
    compute = _dtype(dtype)
    rate = probe_rate(config, compute, batch_view_num * (2 if cfg else 1), torch.get_num_threads())
    return REST * step_flops(config, compute, weight_dtype, batch_view_num, cfg) / rate


@dataclass(frozen=True)
class WaitEstimate:
    step_seconds: float
    evaluations: int  # network evaluations of the run: steps x instances
    steps: int
    instances: int
    dtype: str

    @property
    def seconds(self) -> float:
        return self.step_seconds * self.evaluations

    def describe(self) -> str:
        runs = f"{self.steps} steps" + (f" x {self.instances} candidates" if self.instances > 1 else "")
        precision = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}.get(self.dtype, self.dtype)
        return f"about {duration(self.seconds)} on this CPU ({runs}, ~{duration(self.step_seconds)} a step in {precision})"


def cpu_wait(network, batch_view_num: int, cfg: float, steps: int, instances: int,
             evaluations_per_step: int = 1) -> WaitEstimate | None:
    """The wait of a run of ``network`` on a CPU (None on any other device); a second-order
    sampler evaluates the network more than once a step."""
    if network.device.type != "cpu":
        return None
    from .memory import stored_dtype

    step = estimate_step_seconds(network.config, network.dtype, stored_dtype(network), batch_view_num, cfg != 1)
    return WaitEstimate(step * evaluations_per_step, steps * instances, steps, instances,
                        str(network.dtype).replace("torch.", ""))


class Countdown:
    """The time left, from the estimate until steps have run, then from their measured pace."""

    def __init__(self, estimate: WaitEstimate):
        self.estimate = estimate
        self.start = time.monotonic()

    def left(self, done: int) -> float:
        total = self.estimate.evaluations
        if done <= 0:
            return self.estimate.seconds
        pace = (time.monotonic() - self.start) / done
        return pace * max(total - done, 0)

    def describe(self, done: int) -> str:
        return f"step {done}/{self.estimate.evaluations}: about {duration(self.left(done))} left"


@dataclass(frozen=True)
class TypicalWait:
    """The span of a run's sampling (fastest, slowest seconds) on 2-core CPUs and on GPUs."""

    cpu: tuple[float, float]
    gpu: tuple[float, float]


def typical_wait(evaluations: int) -> TypicalWait:
    """What ``evaluations`` full-size steps (steps x candidates) take: measured CPU steps, GPU
    steps as the step's FLOPs over the assumed rates."""
    flops = _full_step_flops()
    return TypicalWait(cpu=(evaluations * CPU_STEP_SECONDS[0], evaluations * CPU_STEP_SECONDS[1]),
                       gpu=(evaluations * flops / GPU_FLOP_RATES[1], evaluations * flops / GPU_FLOP_RATES[0]))


@functools.cache
def _full_step_flops() -> int:
    from .network.config import SyncDreamerConfig

    return step_flops(SyncDreamerConfig(), torch.float16)


def duration_span(low: float, high: float) -> str:
    """'10-39 min', or '40 min-2.6 h' where the two ends need different units."""
    first, last = duration(low), duration(high)
    number, unit = first.split(" ")
    return f"{number}-{last}" if last.endswith(f" {unit}") else f"{first}-{last}"


def duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _dtype(name):
    from .weights.checkpoint import resolve_dtype

    return name if isinstance(name, torch.dtype) else resolve_dtype(name)
