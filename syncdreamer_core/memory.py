"""Device memory a run needs, told before the run.

Each figure comes from running the step itself on the meta device (shapes only: no
memory, no arithmetic, any torch build) under the accounting of ``accounting.py``: the
bytes of every tensor alive at each moment, the weights included. Attention is counted as
the memory-efficient kernels GPUs and CPUs run it (no seq x seq matrix), the rest as
torch's own kernels allocate. A GPU adds its kernels' workspaces and the allocator's
rounding: ``GPU_OVERHEAD`` covers those.

- ``sampling_peak``: the network's weights plus one denoising step at a batch_view_num
  (instances are sampled one after another, so candidates do not add to it);
- ``decode_peak``: the VAE decoding the 16 views of one instance;
- ``choose_batch_view_num``: the largest batch_view_num whose step fits in free memory.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch

from .accounting import Accounting, aten

GIB = 2**30
#: Workspaces, fragmentation and the CUDA context on a GPU, on top of the counted tensors.
GPU_OVERHEAD = 1.15
GPU_CONTEXT_BYTES = int(0.4 * GIB)
VIEW_CHOICES = (16, 8, 4, 2, 1)


class MemoryShortage(ValueError):
    """Not enough free memory for even the smallest setting, with the figures."""


@dataclass(frozen=True)
class PeakEstimate:
    weights: int  # bytes of the weights resident on the device
    peak: int  # bytes at the busiest moment, weights included
    #: (dtype, op, FLOPs) and (dtype, op, bytes written) of the pass: what ``wait.py`` turns into time
    op_flops: tuple[tuple[str, str, int], ...] = ()
    op_bytes: tuple[tuple[str, str, int], ...] = ()

    @property
    def activations(self) -> int:
        return self.peak - self.weights

    def on_gpu(self) -> int:
        """What a GPU needs: the counted peak with its overhead and context."""
        return int(self.peak * GPU_OVERHEAD) + GPU_CONTEXT_BYTES


class _MetaAccounting(Accounting):
    """Accounting on the meta device, with attention as the memory-efficient kernels run it."""

    def __init__(self):
        super().__init__(devices=("meta",))

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is aten.scaled_dot_product_attention.default:
            query, key, value = args[:3]
            mask = args[3] if len(args) > 3 else kwargs.get("attn_mask")
            efficient = aten._scaled_dot_product_efficient_attention.default
            outs = efficient(query, key, value, mask, False)
            self.account(efficient, (query, key, value, mask, False), {}, outs)
            return outs[0]
        return super().__torch_dispatch__(func, types, args, kwargs)


def _dtype(name) -> torch.dtype:
    from .weights.checkpoint import resolve_dtype

    return resolve_dtype(name)


@functools.lru_cache(maxsize=64)
def sampling_peak(config, dtype="fp16", weight_dtype=None, batch_view_num: int = 8, cfg: bool = True) -> PeakEstimate:
    """Peak device memory of sampling with ``config``'s network: its weights, and one
    denoising step of one instance with ``batch_view_num`` views at a time."""
    from .conditioning import Conditioning
    from .constants import LATENT_CHANNELS, LATENT_SIZE
    from .diffusion.denoiser import SyncDenoiser
    from .network.model import SyncDreamer
    from .weights.storage import store_weights_as

    compute = _dtype(dtype)
    stored = compute if weight_dtype is None else _dtype(weight_dtype)
    with torch.device("meta"):
        model = SyncDreamer(config).to(stored).eval().requires_grad_(False)
    model = store_weights_as(model, stored, compute)
    accounting = _MetaAccounting()
    with accounting:
        accounting.count_module(model)
        weights = accounting.ledger.live["meta"]
        N = config.view_count
        x = torch.zeros(1, N, LATENT_CHANNELS, LATENT_SIZE, LATENT_SIZE, device="meta")
        # the conditioning is made on the host (its values are checked there) and moved
        cond = Conditioning(torch.zeros(1, 1, config.context_dim, device="cpu"),
                            torch.zeros(1, LATENT_CHANNELS, LATENT_SIZE, LATENT_SIZE, device="cpu"),
                            torch.zeros(1, device="cpu"))
        out = SyncDenoiser(model, batch_view_num)(x, torch.zeros(1, dtype=torch.long, device="meta"), cond,
                                                   2.0 if cfg else 1.0)
        del out
    ledger = accounting.ledger
    return PeakEstimate(weights, ledger.peak["meta"], *(tuple((dtype, op, n) for (_, dtype, op), n in sorted(counts.items()))
                                                        for counts in (ledger.op_flops, ledger.op_bytes)))


@functools.lru_cache(maxsize=8)
def decode_peak(dtype="fp16", views: int = 16) -> PeakEstimate:
    """Peak device memory of the SD VAE decoding ``views`` 256x256 views (8 at a time, as
    the pack decodes them), its weights included."""
    from diffusers import AutoencoderKL

    from .constants import LATENT_CHANNELS, LATENT_SIZE
    from .weights.encoders import SD_VAE_CONFIG

    with torch.device("meta"):
        vae = AutoencoderKL(**SD_VAE_CONFIG).to(_dtype(dtype)).eval().requires_grad_(False)
    accounting = _MetaAccounting()
    with accounting, torch.inference_mode():
        accounting.count_module(vae)
        weights = accounting.ledger.live["meta"]
        for chunk in range(0, views, 8):
            latents = torch.zeros(min(8, views - chunk), LATENT_CHANNELS, LATENT_SIZE, LATENT_SIZE, device="meta",
                                  dtype=_dtype(dtype))
            vae.decode(latents)
    return PeakEstimate(weights, accounting.ledger.peak["meta"])


def step_need(config, dtype, weight_dtype, views: int, weights_loaded: bool, gpu: bool) -> tuple[int, PeakEstimate]:
    estimate = sampling_peak(config, dtype, weight_dtype, views)
    need = estimate.activations if weights_loaded else estimate.peak
    return (int(need * GPU_OVERHEAD) if gpu else need), estimate


def choose_batch_view_num(config, dtype, free_bytes: int, weight_dtype=None, weights_loaded: bool = True,
                          gpu: bool = True, asked: int | None = None) -> int:
    """``asked`` views at a time if given (and they fit), else the largest batch_view_num
    whose step fits in ``free_bytes``. ``weights_loaded``: the weights already take their
    share of the device (what is free is for the step). Raises MemoryShortage, with the
    figures, when the step does not fit: before the run, never in the middle of it."""
    for views in ([asked] if asked else VIEW_CHOICES):
        need, estimate = step_need(config, dtype, weight_dtype, views, weights_loaded, gpu)
        if need <= free_bytes:
            return views
    weights = estimate.weights / GIB
    advice = ("lower batch_view_num (0 = auto picks the largest that fits), " if asked and asked > 1 else "") + \
        "close other programs or models" + (", or use fp16 / bf16" if _dtype(dtype) == torch.float32 else "")
    raise MemoryShortage(
        f"SyncDreamer needs {need / GIB:.1f} GB for a denoising step at batch_view_num {views} "
        f"({'beside' if weights_loaded else 'with'} its {weights:.1f} GB of {dtype} weights), and "
        f"{free_bytes / GIB:.1f} GB is free: {advice}")


def views_that_fit(network, asked: int | None, free_bytes: int | None = None) -> int:
    """batch_view_num for a run of ``network`` (already on its device): ``asked`` when it
    fits, or with None / 0 the largest that fits in ``free_bytes`` (default: what the
    system reports free on the device; 8 where it cannot say)."""
    device = network.device
    free = free_memory(device) if free_bytes is None else free_bytes
    if free is None:
        return asked or 8
    return choose_batch_view_num(network.config, network.dtype, int(free), stored_dtype(network), weights_loaded=True,
                                 gpu=device.type != "cpu", asked=asked or None)


def stored_dtype(model: torch.nn.Module) -> torch.dtype:
    """The dtype a model's weights are stored in (narrower than it computes in when fp16
    weights serve fp32 compute)."""
    return next(model.parameters()).dtype


def free_memory(device) -> int | None:
    """Bytes free on ``device`` as the system reports them, or None where it cannot say."""
    device = torch.device(device)
    try:
        if device.type == "cuda":
            return int(torch.cuda.mem_get_info(device)[0])
        if device.type == "mps":
            return int(torch.mps.recommended_max_memory() - torch.mps.driver_allocated_memory())
        if device.type == "cpu":
            for line in open("/proc/meminfo"):
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, RuntimeError, AttributeError, ValueError):
        return None
    return None


def measured_peak(run, device="cpu") -> int:
    """The peak bytes of tensors ``run()`` allocates on ``device``, measured: the CUDA
    allocator's peak on a GPU, torch's profiler's allocation record on the CPU."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        start = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        run()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - start
    if device.type == "mps":
        start = torch.mps.current_allocated_memory()
        run()
        return torch.mps.current_allocated_memory() - start  # MPS keeps no peak: what is held at the end
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        run()
    live = peak = 0
    for event in sorted(prof.events(), key=lambda e: e.time_range.start):
        live += event.self_cpu_memory_usage
        peak = max(peak, live)
    return peak
