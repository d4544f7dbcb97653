"""A CUDA device simulated on the CPU, for the tests that prove every route device-correct
on machines without a GPU.

Device tensors are torch's fake tensors on "cuda" (``FakeTensorMode``): every op on them
runs torch's own fake kernels, so devices, dtypes and shapes are checked as a GPU would
check them (a CPU tensor beside a CUDA one fails as it would there). Each fake tensor
carries a *shadow*: the same op computed on the CPU with the real values, so code that
looks at values (a mesh from a field, a loss, a ranking) runs on, results can be
compared with the CPU route, and every read of a device value by the host is recorded
with the line of this project that made it. On top:

- a float64 tensor on the device is recorded (MPS has no float64; on a GPU it is slow);
- FLOPs per dtype (``ledger.flop_share("cuda")``) tell a silent upcast to float32;
- live and peak device bytes are counted (``ledger.peak["cuda"]``).

It needs a CUDA build of torch (the default Linux wheel): the CPU-only build cannot
create fake CUDA tensors.
"""

from __future__ import annotations

import contextlib
import sys
import types
from unittest import mock

import torch
from torch._subclasses.fake_tensor import (
    DataDependentOutputException,
    DynamicOutputShapeException,
    FakeTensor,
    FakeTensorMode,
    unset_fake_temporarily,
)
from torch.utils._pytree import tree_flatten, tree_map
from torch.utils.weak import WeakIdKeyDictionary

from syncdreamer_core.accounting import SCALAR_READS, Accounting, _device_type, aten, decompose, where_in_pack

GIB = 2**30
#: Shadows of half-precision device tensors compute in float32: this CPU emulates half
#: precision (a minute per step of the small network); the fake side keeps the real dtype.
SHADOW_DTYPE = {torch.float16: torch.float32, torch.bfloat16: torch.float32}


def _widened(t: torch.Tensor) -> torch.Tensor:
    if t.dtype not in SHADOW_DTYPE:
        return t
    with unset_fake_temporarily():
        return t.to(SHADOW_DTYPE[t.dtype])


def require_cuda_build() -> None:
    if torch.version.cuda is None:
        raise RuntimeError(
            f"the simulated-GPU tests need a CUDA build of torch (this is {torch.__version__}, a CPU-only build, which "
            "cannot create fake CUDA tensors): pip install torch==2.14.1 (the default Linux wheel)")


def _target_device(args, kwargs) -> str | None:
    device = kwargs.get("device") or next((a for a in args[1:] if isinstance(a, torch.device)), None)
    return _device_type(device)


GPU_ONLY_ATTENTION = (aten._scaled_dot_product_flash_attention.default,
                      aten._scaled_dot_product_efficient_attention.default)


def _gpu_attention_kernel(query, key, value, attn_mask=None, *args, **kwargs) -> int:
    """The attention kernel a current NVIDIA GPU runs (torch's choice there): flash attention
    for half precision where its shape rules allow, else memory-efficient attention. The
    fake device cannot ask a GPU, and torch's fallback (the math kernel) computes half
    precision in float32: the FLOPs and the memory would be another device's."""
    from torch.nn.attention import SDPBackend

    head = query.shape[-1]
    if query.dtype in (torch.float16, torch.bfloat16) and attn_mask is None and head % 8 == 0 and head <= 256:
        return int(SDPBackend.FLASH_ATTENTION)
    return int(SDPBackend.EFFICIENT_ATTENTION)


def _gpu_attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False):
    from torch.nn.attention import SDPBackend

    if _gpu_attention_kernel(query, key, value, attn_mask) == int(SDPBackend.FLASH_ATTENTION):
        return aten._scaled_dot_product_flash_attention.default(query, key, value, dropout_p, is_causal, scale=scale)[0]
    return aten._scaled_dot_product_efficient_attention.default(query, key, value, attn_mask, False, dropout_p, is_causal,
                                                                scale=scale)[0]


def _attention_on_cpu(fake_out, query, key, value, *args, **kwargs):
    """The shadow of a GPU-only attention kernel: its output computed on the CPU, its
    bookkeeping outputs (log-sum-exp, RNG state) as zeros of their shapes."""
    attn_bias = args[0] if args and (args[0] is None or isinstance(args[0], torch.Tensor)) else None
    is_causal = kwargs.get("is_causal", False)
    output = torch.nn.functional.scaled_dot_product_attention(query, key, value, attn_mask=attn_bias,
                                                              is_causal=is_causal, scale=kwargs.get("scale"))
    rest = [torch.zeros(t.shape, dtype=SHADOW_DTYPE.get(t.dtype, t.dtype)) if isinstance(t, torch.Tensor) else t
            for t in fake_out[1:]]
    return (output, *rest)


def _simulated_backward(sim):
    """``Tensor.backward`` on the simulated device. The autograd engine cannot run there (it
    asks the driver for a context), so the graph's leaves get zero gradients of their own
    device and dtype: what follows (an optimiser's step) runs on the device as it would,
    but nothing is learnt; ``sim.backward_passes`` counts them."""
    original = torch.Tensor.backward

    def backward(self, gradient=None, retain_graph=None, create_graph=False, inputs=None):
        if not isinstance(self, FakeTensor):
            return original(self, gradient, retain_graph, create_graph, inputs)
        sim.backward_passes += 1
        seen, stack = set(), [self.grad_fn]
        while stack:
            node = stack.pop()
            if node is None or id(node) in seen:
                continue
            seen.add(id(node))
            leaf = getattr(node, "variable", None)
            if leaf is not None and leaf.requires_grad:
                leaf.grad = torch.zeros_like(leaf) if leaf.grad is None else leaf.grad
            stack.extend(next_node for next_node, _ in node.next_functions)
        return None

    return backward


def _for_callers_outside_torch(simulated, original):
    """torch.cuda as the simulated device for this project's code (and ComfyUI's), and as
    the real machine for torch's own internals (the fake kernels must not think a driver
    is there)."""

    def call(*args, **kwargs):
        caller = sys._getframe(1).f_globals.get("__name__", "")
        return original(*args, **kwargs) if caller.split(".")[0] == "torch" else simulated(*args, **kwargs)

    return call


class SimulatedCuda(Accounting):
    """Use as a context manager; see the module doc. ``total_gb`` is the device's memory as
    ``torch.cuda`` reports it; ``bf16`` whether the device computes in bf16."""

    def __init__(self, total_gb: float = 24.0, bf16: bool = True, mps_rules: bool = False):
        """``mps_rules``: the device also refuses what Apple's MPS refuses (any float64 tensor;
        3D grid_sample, as MPS does before torch 2.11), as MPS raises it."""
        require_cuda_build()
        self.mps_rules = mps_rules
        super().__init__(devices=("cuda",))
        self.fake = FakeTensorMode(allow_non_fake_inputs=True)
        self.shadows = WeakIdKeyDictionary()
        self.float64: list[tuple[str, str]] = []
        self.no_shadow: list[str] = []
        self.backward_passes = 0
        self.total = int(total_gb * GIB)
        self.bf16 = bf16
        self._stack = contextlib.ExitStack()

    # -- entering -----------------------------------------------------------------------
    def __enter__(self):
        self._depth = getattr(self, "_depth", 0) + 1
        if self._depth > 1:  # re-entered from a handler (decompositions come back here)
            return super().__enter__()
        cuda = torch.cuda
        properties = types.SimpleNamespace(name="Simulated CUDA device", total_memory=self.total, major=8, minor=0,
                                           multi_processor_count=108)
        patches = {
            "is_available": lambda: True, "device_count": lambda: 1, "current_device": lambda: 0,
            "is_bf16_supported": lambda *a, **k: self.bf16, "get_device_name": lambda *a: properties.name,
            "get_device_capability": lambda *a: (8, 0), "get_device_properties": lambda *a: properties,
            "synchronize": lambda *a: None, "empty_cache": lambda: None,
            "mem_get_info": lambda *a: (self.total - self.ledger.live["cuda"], self.total),
            "memory_allocated": lambda *a: self.ledger.live["cuda"],
            "max_memory_allocated": lambda *a: self.ledger.peak["cuda"],
            "reset_peak_memory_stats": lambda *a: self.ledger.peak.update(cuda=self.ledger.live["cuda"]),
        }
        for name, value in patches.items():
            self._stack.enter_context(mock.patch.object(cuda, name, _for_callers_outside_torch(value, getattr(cuda, name))))
        # a CUDA tensor's first creation initialises the driver (from C++, through this Python
        # function); the fake device has none to initialise
        self._stack.enter_context(mock.patch.object(cuda, "_lazy_init", lambda: None))
        # torch's autograd engine asks the driver for a context before a backward pass on a
        # CUDA device: the simulated backward gives the leaves zero gradients on the device
        self._stack.enter_context(mock.patch.object(torch.Tensor, "backward", _simulated_backward(self)))
        # cuDNN's fake kernels ask the driver for its version; the native kernels need nothing
        self._stack.enter_context(torch.backends.cudnn.flags(enabled=False))
        self._stack.enter_context(self.fake)
        return super().__enter__()

    def __exit__(self, *exc):
        self._depth -= 1
        try:
            return super().__exit__(*exc)
        finally:
            if self._depth == 0:
                self._stack.close()

    # -- the values behind the fake tensors --------------------------------------------
    def real(self, value):
        """The CPU value of a simulated tensor (any pytree of them)."""
        return tree_map(self._real_leaf, value)

    def _real_leaf(self, leaf):
        if isinstance(leaf, FakeTensor):
            if leaf not in self.shadows:
                raise AssertionError(f"a fake tensor without its CPU shadow ({tuple(leaf.shape)}, {leaf.dtype})")
            return self.shadows[leaf]
        if isinstance(leaf, torch.Tensor):
            return _widened(leaf)
        if isinstance(leaf, torch.device) and leaf.type == "cuda":
            return torch.device("cpu")
        if isinstance(leaf, torch.dtype):
            return SHADOW_DTYPE.get(leaf, leaf)
        return leaf

    def _as_fake(self, leaf):
        if isinstance(leaf, torch.Tensor) and not isinstance(leaf, FakeTensor):
            fake = self.fake.from_tensor(leaf)
            self.shadows[fake] = _widened(leaf)
            return fake
        return leaf

    def _on_host(self, fake: FakeTensor, shadow: torch.Tensor) -> torch.Tensor:
        """A device value copied to the host, in the dtype the device had."""
        return shadow.to(fake.dtype) if shadow.dtype != fake.dtype else shadow

    def _real_kwargs(self, kwargs: dict) -> dict:
        kwargs = self.real(kwargs)
        if _device_type(kwargs.get("device")) == "cuda":
            kwargs["device"] = torch.device("cpu")
        return kwargs

    def _targets_device(self, args, kwargs) -> bool:
        return any(isinstance(leaf, torch.device) and leaf.type == "cuda" for leaf in tree_flatten((args, kwargs))[0]) \
            or _device_type(kwargs.get("device")) == "cuda"

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func.namespace == "prim":  # metadata (prim::device, ...): the fake tensor knows it
            return func(*args, **kwargs)
        device = self.on_device(args, kwargs) or ("cuda" if self._targets_device(args, kwargs) else None)
        if device is None:
            with unset_fake_temporarily():
                return func(*args, **kwargs)  # the host's own work, for real
        if func is aten.scaled_dot_product_attention.default:
            with self:
                return _gpu_attention(*args, **kwargs)
        decomposed = decompose(self, func, args, kwargs, only=None)  # e.g. aten.to: into the ops that do the work
        if decomposed is not NotImplemented:
            return decomposed
        self.note_reads(func, args, kwargs)
        real_args, real_kwargs = self.real(args), self._real_kwargs(kwargs)
        if func in SCALAR_READS:
            with unset_fake_temporarily():
                return func(*real_args, **real_kwargs)
        if func in (aten._to_copy.default, aten.to.device) and _target_device(args, kwargs) == "cpu":
            out = func(*tree_map(self._as_fake, args), **tree_map(self._as_fake, kwargs))  # its dtype and shape
            with unset_fake_temporarily():
                return self._on_host(out, func(*real_args, **real_kwargs))  # a real CPU tensor, as the copy gives
        if func is aten.copy_.default and not isinstance(args[0], FakeTensor):
            with unset_fake_temporarily():
                return args[0].copy_(real_args[1])
        # on the fake device: torch's own device rules (host tensors enter as fakes of themselves)
        if self.mps_rules and func in (aten.grid_sampler_3d.default, aten.grid_sampler_3d_backward.default):
            raise NotImplementedError(f"The operator '{func.name()}' is not currently implemented for the MPS device.")
        try:
            out = func(*tree_map(self._as_fake, args), **tree_map(self._as_fake, kwargs))
        except (DynamicOutputShapeException, DataDependentOutputException):
            return self._shaped_by_values(func, real_args, real_kwargs)
        with unset_fake_temporarily():
            try:
                if func in GPU_ONLY_ATTENTION:
                    real_out = _attention_on_cpu(out, *real_args, **real_kwargs)
                else:
                    real_out = func(*real_args, **real_kwargs)
            except (NotImplementedError, RuntimeError) as error:
                self.no_shadow.append(f"{func}: {str(error).splitlines()[0][:120]}")
                real_out = tree_map(lambda t: torch.zeros(t.shape, dtype=t.dtype) if isinstance(t, FakeTensor) else t,
                                    out)
        fakes, _ = tree_flatten(out)
        reals, _ = tree_flatten(real_out)
        for fake, real in zip(fakes, reals, strict=False):
            if isinstance(fake, FakeTensor) and isinstance(real, torch.Tensor):
                self.shadows[fake] = real
                if fake.dtype == torch.float64 and fake.device.type == "cuda":
                    self.float64.append((str(func), where_in_pack()))
                    if self.mps_rules:
                        raise TypeError("Cannot convert a MPS Tensor to float64 dtype as the MPS framework doesn't "
                                        f"support float64. Please use float32 instead. ({where_in_pack()})")
        self.account(func, args, kwargs, out)
        return out

    def _shaped_by_values(self, func, real_args, real_kwargs):
        """An op whose output shape depends on the values (nonzero, boolean indexing): a GPU
        runs it, but the host waits for the count; so is it recorded, and run on the shadows."""
        self.record_read(f"{func.__name__} (output shape from values)", "cuda")
        with unset_fake_temporarily():
            real_out = func(*real_args, **real_kwargs)

        def fake_of(real):
            if not isinstance(real, torch.Tensor):
                return real
            fake = torch.empty_strided(real.shape, real.stride(), dtype=real.dtype, device="cuda")
            self.shadows[fake] = real
            self.count_storage(fake)
            return fake

        return tree_map(fake_of, real_out)

    # -- what a test asks ----------------------------------------------------------------
    def reads_since(self, mark: int) -> list:
        return self.ledger.reads[mark:]
