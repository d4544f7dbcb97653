"""What the CPU can compute natively, to choose the network's precision on a CPU.

bf16 and fp16 matrix products run at hardware speed only on CPUs with the instructions
for them (bf16: AVX512_BF16 or AMX on recent Xeons and AMD Zen 4 and later; fp16:
AVX512_FP16 / AMX-FP16 on Sapphire Rapids and later). Elsewhere torch emulates them,
many times slower than fp32.
"""

from __future__ import annotations

import functools
import platform
from pathlib import Path

#: CPU flags (as /proc/cpuinfo names them) that make a dtype native.
NATIVE_FLAGS = {"bf16": ("avx512_bf16", "amx_bf16"), "fp16": ("avx512_fp16", "amx_fp16")}


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (Linux; empty elsewhere)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def native_on_cpu(dtype: str) -> bool:
    """Whether this CPU multiplies ``dtype`` ("fp32", "bf16", "fp16") in hardware. On Apple
    and other ARM CPUs with bf16/fp16 extensions torch uses them; reported as native."""
    if dtype == "fp32":
        return True
    flags = cpu_flags()
    if platform.machine().lower() in ("arm64", "aarch64"):
        return {"bf16": "bf16", "fp16": "fphp"}[dtype] in flags or platform.system() == "Darwin"
    return any(flag in flags for flag in NATIVE_FLAGS[dtype])


def emulated_half_warning(device, dtype: str) -> str | None:
    """The warning for fp16/bf16 compute on a CPU that lacks the instructions (torch emulates
    them, many times slower than fp32); None where the choice is fine."""
    if not str(device).startswith("cpu") or dtype not in ("fp16", "bf16") or native_on_cpu(dtype):
        return None
    return f"this CPU has no {dtype} instructions: {dtype} compute is emulated and many times slower than fp32"


def cpu_report() -> dict:
    import torch

    flags = cpu_flags()
    return {"cpu": cpu_model(), "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "flags": sorted(f for f in flags if f.startswith(("avx512", "amx", "avx2", "fma"))),
            "native_bf16": native_on_cpu("bf16"), "native_fp16": native_on_cpu("fp16")}


def recommended_cpu_dtype() -> str:
    """bf16 where the CPU computes it natively, else fp32."""
    return "bf16" if native_on_cpu("bf16") else "fp32"


def recommended_dtype(device) -> str:
    """The compute dtype a run on ``device`` is fastest in without losing the picture: on a
    CPU ``recommended_cpu_dtype``; on a GPU bf16 where it computes bf16, else fp16; on Apple's
    GPU fp16."""
    import torch

    device = torch.device(device)
    if device.type == "cpu":
        return recommended_cpu_dtype()
    if device.type == "cuda":
        if not torch.cuda.is_available():
            return "fp32"  # nothing to ask; check_device tells the user why
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if device.type == "mps":
        return "fp16"
    return "fp32"
