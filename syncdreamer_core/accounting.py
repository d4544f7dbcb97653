"""What a run costs a device, counted at torch's dispatcher while it runs: the bytes of
tensors alive on each device (and their peak), the FLOPs of every matrix product,
convolution and attention by the dtype they run in, and every read of a device value
by the host (a `.item()`, `float(t)`, `if t.any()` or a copy to the CPU: each stalls a
GPU's queue). It needs no device: on the meta device (shapes only, any torch build) it
tells a run's peak memory before the run.
"""

from __future__ import annotations

import math
import traceback
import weakref
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

aten = torch.ops.aten
PACKAGE_ROOT = Path(__file__).resolve().parents[1]
#: Where this project's own code lives (reads made there are the project's to fix).
OWN_CODE = ("syncdreamer_core", "nodes", "bench", "scripts", "__init__.py")
#: Ops that hand a device value to the host.
SCALAR_READS = {aten._local_scalar_dense.default, aten.is_nonzero.default}


def _device_type(device) -> str | None:
    return None if device is None else torch.device(device).type


def _flop_registry() -> dict:
    """torch's FLOP formulas, and the CPU's fused attention (the same two matrix products
    as the GPU kernels torch counts)."""
    from torch.utils.flop_counter import flop_registry

    if aten._scaled_dot_product_flash_attention_for_cpu not in flop_registry:
        flop_registry = dict(flop_registry)
        flop_registry[aten._scaled_dot_product_flash_attention_for_cpu] = \
            flop_registry[aten._scaled_dot_product_flash_attention]
    return flop_registry


def where_in_pack() -> str:
    """file:line of the code that asked for the current op: the innermost frame outside
    torch and this accounting. Inside this project it reads ``syncdreamer_core/x.py:12``;
    code of the host (ComfyUI, its stand-ins) reads ``host <file>:<line>``."""
    import sysconfig

    stdlib = Path(sysconfig.get_paths()["stdlib"])
    for frame in reversed(traceback.extract_stack()[:-2]):
        path = Path(frame.filename)
        # libraries the pack calls (torch, diffusers, kornia...) and the standard library:
        # a read there is made for the pack's call
        if "site-packages" in path.parts or stdlib in path.parents or path.name in ("accounting.py",
                                                                                     "simulated_cuda.py"):
            continue
        if PACKAGE_ROOT in path.parents and path.relative_to(PACKAGE_ROOT).parts[0] in OWN_CODE:
            return f"{path.relative_to(PACKAGE_ROOT)}:{frame.lineno}"
        return f"host {path.name}:{frame.lineno}"
    return "?"


def in_pack(where: str) -> bool:
    return not where.startswith(("host ", "?"))


#: Composite ops whose parts carry the FLOPs (matrix products, convolutions, attention).
#: Others run whole: their decompositions can differ from what the kernel does (upsampling's
#: casts its input to float32 and back, which the real kernel never does).
DECOMPOSED = ("linear", "matmul", "einsum", "bilinear", "conv", "scaled_dot_product_attention", "tensordot",
              "inner", "outer", "dot", "vdot", "mv", "baddbmm", "addbmm", "chain_matmul", "multi_dot")


def decompose(mode: TorchDispatchMode, func, args, kwargs, only: tuple[str, ...] | None = DECOMPOSED):
    """A composite op (under inference mode ``matmul``, ``linear``... reach a mode whole) run
    as the ops it is made of, each of which comes back to ``mode``; NotImplemented for an
    op with a kernel of its own, or (``only``) one not named there."""
    if func.namespace != "aten" or not torch._C._dispatch_has_kernel_for_dispatch_key(
            func.name(), "CompositeImplicitAutograd") or (only and not func._overloadpacket.__name__.startswith(only)):
        return NotImplemented
    with mode:  # a handler runs with its mode popped
        return func.decompose(*args, **kwargs)


@dataclass
class DeviceLedger:
    """Live and peak bytes per device type, FLOPs per (device type, dtype), host reads."""

    live: Counter = field(default_factory=Counter)
    peak: Counter = field(default_factory=Counter)
    flops: Counter = field(default_factory=Counter)
    #: FLOPs per (device type, dtype, op): which ops ran in which precision
    op_flops: Counter = field(default_factory=Counter)
    #: bytes written per (device type, dtype, op) by the ops without FLOPs (views excluded):
    #: the memory-bound rest of a step (norms, activations, additions, copies, sampling)
    op_bytes: Counter = field(default_factory=Counter)
    #: dtype conversions per (device type, from dtype, to dtype): ``casts`` counts them,
    #: ``cast_bytes`` the bytes they write
    casts: Counter = field(default_factory=Counter)
    cast_bytes: Counter = field(default_factory=Counter)
    reads: list = field(default_factory=list)

    def flop_share(self, device: str) -> dict[str, float]:
        """Share of the FLOPs on ``device`` that ran in each dtype."""
        on = {dtype: n for (kind, dtype), n in self.flops.items() if kind == device}
        total = sum(on.values())
        return {dtype: n / total for dtype, n in sorted(on.items())} if total else {}


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


def _is_view(func) -> bool:
    """An op whose output aliases its input without writing (view, reshape, transpose...)."""
    schema = func._schema
    return not schema.is_mutable and any(r.alias_info is not None for r in schema.returns)


#: Ops that convert a tensor's dtype: the source is their first argument, or the second for copy_.
CASTS = {aten._to_copy.default: 0, aten.copy_.default: 1, aten.to.dtype: 0, aten.to.dtype_layout: 0}


def _cast_source(func, args) -> torch.dtype | None:
    position = CASTS.get(func)
    if position is None or len(args) <= position or not isinstance(args[position], torch.Tensor):
        return None
    return args[position].dtype


class Accounting(TorchDispatchMode):
    """Counts, while active, what the ops dispatched under it cost (see the module doc).

    ``count_storage(tensor)`` adds tensors that exist before the run (the weights) to the
    live bytes; storages are counted once however many views share them, and leave the
    count when their last tensor is freed."""

    def __init__(self, devices: tuple[str, ...] = ("cuda", "mps", "meta", "xpu")):
        super().__init__()
        self.devices = devices
        self.ledger = DeviceLedger()
        self._holders: dict[int, int] = defaultdict(int)
        self._bytes: dict[int, tuple[str, int]] = {}
        self._tracked: dict[int, int] = {}

    # -- storages ---------------------------------------------------------------------
    def _storage_key(self, t: torch.Tensor) -> tuple[int, int] | None:
        try:
            storage = t.untyped_storage()
            return storage._cdata, storage.nbytes()
        except (RuntimeError, NotImplementedError):
            return None

    def count_storage(self, t: torch.Tensor) -> None:
        if not isinstance(t, torch.Tensor) or t.device.type not in self.devices or id(t) in self._tracked:
            return
        key = self._storage_key(t)
        if key is None:
            return
        cdata, nbytes = key
        device = t.device.type
        if self._holders[cdata] == 0:
            self._bytes[cdata] = (device, nbytes)
            self.ledger.live[device] += nbytes
            self.ledger.peak[device] = max(self.ledger.peak[device], self.ledger.live[device])
        self._holders[cdata] += 1
        self._tracked[id(t)] = cdata
        weakref.finalize(t, self._release, id(t), cdata)

    def _release(self, tensor_id: int, cdata: int) -> None:
        self._tracked.pop(tensor_id, None)
        self._holders[cdata] -= 1
        if self._holders[cdata] <= 0:
            self._holders.pop(cdata, None)
            device, nbytes = self._bytes.pop(cdata, ("", 0))
            if device:
                self.ledger.live[device] -= nbytes

    def count_module(self, module: torch.nn.Module) -> None:
        for t in list(module.parameters()) + list(module.buffers()):
            self.count_storage(t)

    # -- ops --------------------------------------------------------------------------
    def on_device(self, args, kwargs) -> str | None:
        for leaf in tree_flatten((args, kwargs))[0]:
            if isinstance(leaf, torch.Tensor) and leaf.device.type in self.devices:
                return leaf.device.type
        return None

    def record_read(self, what: str, device: str) -> None:
        self.ledger.reads.append((what, device, where_in_pack()))

    def account(self, func, args, kwargs, out) -> None:
        device = self.on_device(args, kwargs)
        packet = func._overloadpacket
        registry = _flop_registry()
        if device and packet in registry:
            first = next((t for t in tree_flatten(args)[0] if isinstance(t, torch.Tensor)), None)
            try:
                count = registry[packet](*args, **kwargs, out_val=out)
            except Exception:  # noqa: BLE001 - a formula that does not fit this overload
                count = 0
            if first is not None and count:
                dtype = _dtype_name(first.dtype)
                self.ledger.flops[(device, dtype)] += int(count)
                self.ledger.op_flops[(device, dtype, str(packet).replace("aten.", ""))] += int(count)
        elif device and not self._aliases(func, args, out):
            self._count_bytes(func, args, kwargs, out, device)
        for leaf in tree_flatten(out)[0]:
            if isinstance(leaf, torch.Tensor):
                self.count_storage(leaf)

    def _aliases(self, func, args, out) -> bool:
        """Whether ``out`` is a view of the input (view, reshape, transpose, a ``to`` that
        changes nothing): no bytes written. Decided by the storages where the schema allows
        either (``to`` returns its input or a copy)."""
        if not _is_view(func):
            return False
        first = next((a for a in args if isinstance(a, torch.Tensor)), None)
        result = next((o for o in tree_flatten(out)[0] if isinstance(o, torch.Tensor)), None)
        if first is None or result is None:
            return True
        a, b = self._storage_key(first), self._storage_key(result)
        return a is None or b is None or a[0] == b[0]

    def _count_bytes(self, func, args, kwargs, out, device: str) -> None:
        written = [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]
        if not written:
            return
        nbytes = sum(t.numel() * t.element_size() for t in written)
        op = str(func._overloadpacket).replace("aten.", "")
        self.ledger.op_bytes[(device, _dtype_name(written[0].dtype), op)] += nbytes
        source = _cast_source(func, args)
        if source is not None and source != written[0].dtype:
            pair = (device, _dtype_name(source), _dtype_name(written[0].dtype))
            self.ledger.casts[pair] += 1
            self.ledger.cast_bytes[pair] += nbytes

    def note_reads(self, func, args, kwargs) -> None:
        """A scalar read of a device tensor, or a copy of one to the CPU."""
        if func in SCALAR_READS:
            device = self.on_device(args, kwargs)
            if device:
                self.record_read(func.__name__, device)
        elif func in (aten._to_copy.default, aten.to.device) and _device_type(
                kwargs.get("device") or next((a for a in args[1:] if isinstance(a, torch.device)), None)) == "cpu":
            device = self.on_device(args[:1], {})
            if device:
                self.record_read("copy to the CPU", device)
        elif func is aten.copy_.default and args[0].device.type == "cpu":
            device = self.on_device(args[1:2], {})
            if device:
                self.record_read("copy to the CPU", device)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        decomposed = decompose(self, func, args, kwargs)
        if decomposed is not NotImplemented:
            return decomposed
        self.note_reads(func, args, kwargs)
        out = func(*args, **kwargs)
        self.account(func, args, kwargs, out)
        return out


#: torch's profiler names dtypes as C++ does
_PROFILER_DTYPES = {"float": torch.float32, "double": torch.float64, "c10::BFloat16": torch.bfloat16,
                    "c10::Half": torch.float16, "int": torch.int32, "long int": torch.int64,
                    "bool": torch.bool, "unsigned char": torch.uint8, "signed char": torch.int8}


@dataclass
class Copies:
    """Every copy a run made (``aten::copy_``, wherever it was called from): casts, layout
    changes (``contiguous`` inside a convolution, a reshape of a strided view), the bias an
    ``addmm`` starts from. Keyed by (source dtype, destination dtype)."""

    count: Counter = field(default_factory=Counter)
    nbytes: Counter = field(default_factory=Counter)

    @property
    def total(self) -> int:
        return sum(self.count.values())

    @property
    def casts(self) -> int:
        """The copies that change the dtype."""
        return sum(n for (a, b), n in self.count.items() if a != b)

    def summary(self) -> dict:
        """{"total", "MB", "by_pair": {"float32->bfloat16": {"count", "MB"}}}: what the bench prints."""
        pairs = {f"{a}->{b}": {"count": self.count[(a, b)], "MB": round(self.nbytes[(a, b)] / 2**20, 1)}
                 for (a, b) in sorted(self.count)}
        return {"total": self.total, "casts": self.casts,
                "MB": round(sum(self.nbytes.values()) / 2**20, 1), "by_pair": pairs}


def count_copies(run) -> Copies:
    """Runs ``run()`` under torch's profiler and counts its copies (see ``Copies``). The
    dispatcher-level accounting above sees only the copies the Python code asks for; the
    profiler also sees those a kernel makes for itself, which cost the same."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        run()
    copies = Copies()
    for event in prof.events():
        if event.name != "aten::copy_" or len(event.input_dtypes) < 2:
            continue
        destination, source = (_PROFILER_DTYPES.get(name) for name in event.input_dtypes[:2])
        pair = (_dtype_name(source) if source else event.input_dtypes[1],
                _dtype_name(destination) if destination else event.input_dtypes[0])
        copies.count[pair] += 1
        if destination is not None and event.input_shapes and event.input_shapes[0]:
            copies.nbytes[pair] += math.prod(event.input_shapes[0]) * destination.itemsize
    return copies
