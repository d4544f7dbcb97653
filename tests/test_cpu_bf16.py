"""bf16 on CPUs that have it: every matrix product and convolution in bf16; attention in bf16
where the CPU has AMX (twice float32's rate there) and in float32 where it has AVX512_BF16
alone (torch's CPU kernel computes bf16 attention at half its float32 rate there), with q, k
and v cast once; the norms take the bf16 activations and parameters without copying them
(torch's CPU kernels normalise in float32 by themselves); the volume's sampling in float32;
the convolutions stored channels-last, so that torch's bf16 kernels copy no layout.
The speed is measured on such CPUs by bench/bench_sampler.py; here the precision of each op,
the numbers and the casts of a step are checked, on both kinds of CPU (their flags faked)."""

from __future__ import annotations

import pytest
import torch
from helpers import fake_cpu, fast_tiny_config

from syncdreamer_core.accounting import Accounting, aten
from syncdreamer_core.network.attention import BasicTransformerBlock
from syncdreamer_core.network.norms import GroupNorm, LayerNorm

AMX = {"avx512f", "avx512_bf16", "amx_bf16", "amx_tile"}  # Sapphire Rapids and later Xeons
AVX512_BF16 = {"avx512f", "avx512_bf16"}  # AMD Zen 4


@pytest.mark.parametrize("flags,attention_dtype,casts", [(AVX512_BF16, "float32", 2 + 3), (AMX, "bfloat16", 0)])
def test_a_bf16_transformer_block_runs_attention_in_the_cpus_fastest_dtype_with_one_cast_of_qkv(
        monkeypatch, flags, attention_dtype, casts):
    fake_cpu(monkeypatch, flags)
    torch.manual_seed(0)
    block = BasicTransformerBlock(64, 4, 16, context_dim=32).eval()
    x, context = torch.randn(2, 256, 64), torch.randn(2, 7, 32)
    with torch.inference_mode():
        reference = block(x, context)
        half, x16, context16 = block.to(torch.bfloat16), x.bfloat16(), context.bfloat16()
        with Accounting(devices=("cpu",)) as counted:
            out = half(x16, context16)
    ops = {(dtype, op) for (_, dtype, op) in counted.ledger.op_flops}
    attention = {op for dtype, op in ops if "attention" in op}
    assert attention and all((attention_dtype, op) in ops for op in attention), ops
    assert {dtype for dtype, op in ops if "attention" not in op} == {"bfloat16"}, ops
    # self-attention: packed q, k, v and the output; cross-attention: q, packed k, v and the output
    assert sum(counted.ledger.casts.values()) == casts, counted.ledger.casts
    assert out.dtype == torch.bfloat16
    assert float((out.float() - reference).norm() / reference.norm()) < 0.02


def step_costs(dtype: torch.dtype, preferred_layout: bool = True):
    """One denoising step of the tests' network at batch_view_num 8 (two chunks of views),
    its weights laid out as the loader lays them out (or channel-first): (eps, the casts the
    code asks for with the MB they write, every copy the step makes as torch's profiler
    counts them, the casts attention needs, the casts the volume's sampling needs)."""
    from syncdreamer_core.accounting import count_copies
    from syncdreamer_core.conditioning import Conditioning
    from syncdreamer_core.diffusion.denoiser import SyncDenoiser
    from syncdreamer_core.network.attention import attention_dtype
    from syncdreamer_core.network.depth_attention import DepthAttention
    from syncdreamer_core.network.memory_format import use_preferred_memory_format
    from syncdreamer_core.network.model import SyncDreamer

    torch.manual_seed(0)
    config = fast_tiny_config()
    model = SyncDreamer(config).eval().requires_grad_(False).to(dtype)
    if preferred_layout:
        model = use_preferred_memory_format(model, "cpu", dtype)
    cond = Conditioning(torch.randn(1, 1, config.context_dim), torch.randn(1, 4, 32, 32), torch.zeros(1))
    x, t = torch.randn(1, 16, 4, 32, 32), torch.full((1,), 500, dtype=torch.long)
    counted = Accounting(devices=("cpu",))
    with torch.inference_mode():
        with counted:
            eps = SyncDenoiser(model, 8)(x, t, cond, 2.0)
        copies = count_copies(lambda: SyncDenoiser(model, 8)(x, t, cond, 2.0))
    chunks = 2
    cast = attention_dtype(torch.zeros(1, dtype=dtype)) != dtype
    blocks = sum(isinstance(m, BasicTransformerBlock) for m in model.modules())
    depth = sum(isinstance(m, DepthAttention) for m in model.modules())
    attention = chunks * (2 * blocks + 3 * depth) if cast else 0  # packed q, k, v + output; q, k and v + output
    sampling = 2 * (1 + chunks) if dtype == torch.bfloat16 else 0  # in and out of each grid sample, in float32
    return (eps, sum(counted.ledger.casts.values()), sum(counted.ledger.cast_bytes.values()) / 2**20, copies,
            attention, sampling)


@pytest.mark.parametrize("flags,pinned", [(AVX512_BF16, 97), (AMX, 13)])
def test_a_bf16_cpu_step_casts_what_a_float32_step_does_plus_what_attention_and_sampling_need(
        monkeypatch, flags, pinned):
    """The rule: a bf16 step's casts within 1.2x of a float32 step's, plus what attention (in
    float32 without AMX) and the volume's sampling (float32 on every CPU) need, plus the step's
    inputs and embeddings turned to bf16 (a few, under a MB); the count itself is pinned."""
    fake_cpu(monkeypatch, flags)
    _, bf16, megabytes, _, attention, sampling = step_costs(torch.bfloat16)
    fp32 = step_costs(torch.float32)[1]
    assert bf16 <= 1.2 * fp32 + attention + sampling + 8, (bf16, fp32, attention, sampling)
    assert bf16 == pinned, (bf16, attention, sampling)
    if attention == 0:
        assert megabytes < 60, megabytes  # the sampling's in and out; nothing of the size of an activation


@pytest.mark.parametrize("flags,pinned", [(AVX512_BF16, 302), (AMX, 218)])
def test_every_copy_of_a_bf16_cpu_step_counted_within_what_a_float32_step_makes_plus_attention(
        monkeypatch, flags, pinned):
    """All copies, not only casts: the layout changes torch's kernels make for themselves count
    too (a bf16 convolution copies a channel-first input to channels-last and back, every
    call). With the convolutions stored channels-last a bf16 step makes fewer copies than a
    float32 one, plus the casts attention and the sampling need; pinned, with the count the
    channel-first layout made beside it."""
    fake_cpu(monkeypatch, flags)
    eps, _, _, copies, attention, sampling = step_costs(torch.bfloat16)
    channel_first_eps, _, _, channel_first, _, _ = step_costs(torch.bfloat16, preferred_layout=False)
    reference, _, _, fp32, _, _ = step_costs(torch.float32)
    assert copies.total <= 1.2 * fp32.total + attention + sampling, (copies.summary(), fp32.total)
    assert channel_first.total > copies.total + 150, (channel_first.total, copies.total)
    assert copies.total == pinned, copies.summary()

    def error(x):
        return float((x.float() - reference).norm() / reference.norm())

    # the layout changes where the numbers live, not how close to float32 they are
    assert error(eps) < 1.2 * error(channel_first_eps), (error(eps), error(channel_first_eps))


class ActivationCopies(Accounting):
    """Counts dtype copies of tensors of an activation's size."""

    def __init__(self, numel: int):
        super().__init__(devices=("cpu",))
        self.numel, self.seen = numel, []

    def account(self, func, args, kwargs, out):
        if func is aten._to_copy.default and args[0].numel() == self.numel:
            self.seen.append(func)
        super().account(func, args, kwargs, out)


def test_norms_on_a_bf16_cpu_copy_no_activation_and_give_the_float32_path_s_numbers():
    torch.manual_seed(1)
    for norm, x in ((GroupNorm(8, 64), torch.randn(2, 64, 16, 16) * 3 + 1), (LayerNorm(64), torch.randn(4, 100, 64))):
        torch.nn.init.normal_(norm.weight)
        torch.nn.init.normal_(norm.bias)
        norm = norm.to(torch.bfloat16)
        half = x.bfloat16()
        cast_path = (torch.nn.functional.group_norm(half.float(), 8, norm.weight.float(), norm.bias.float(), norm.eps)
                     if isinstance(norm, GroupNorm) else
                     torch.nn.functional.layer_norm(half.float(), norm.normalized_shape, norm.weight.float(),
                                                    norm.bias.float(), norm.eps)).bfloat16()
        with torch.inference_mode(), ActivationCopies(half.numel()) as copies:
            out = norm(half)
        assert out.dtype == torch.bfloat16 and not copies.seen, (type(norm).__name__, copies.seen)
        # the same to the last bit of bf16 (the kernels round once, the cast path twice)
        assert ((out.float() - cast_path.float()).abs() <= cast_path.float().abs() * 2**-7 + 1e-3).all()


@pytest.mark.parametrize("dtype,weight_dtype,compute_device,channels_last", [
    ("bf16", None, None, True), ("fp16", None, None, True), ("fp32", None, None, False),
    ("fp32", "fp16", None, False), ("bf16", "fp16", None, True), ("bf16", None, "cuda", False),
    ("fp16", None, "cuda:0", False)])
def test_the_loader_stores_the_convolutions_channels_last_where_they_compute_in_half_precision_on_a_cpu(
        dtype, weight_dtype, compute_device, channels_last):
    """Loaded on the CPU in each case; a host that moves the network to a GPU names it."""
    from syncdreamer_core.weights.checkpoint import load_checkpoint
    from syncdreamer_core.weights.official_layout import random_checkpoint

    model = load_checkpoint(random_checkpoint(fast_tiny_config(), vae=None, clip=None), dtype=dtype,
                            weight_dtype=weight_dtype, compute_device=compute_device,
                            with_vae=False, with_clip=False).model
    convolutions = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size != (1, 1)]
    assert convolutions
    layouts = {m.weight.is_contiguous(memory_format=torch.channels_last) for m in convolutions}
    assert layouts == {channels_last}, (dtype, weight_dtype, compute_device, layouts)


def test_copies_are_counted_by_dtype_pair_with_the_bytes_they_write():
    from syncdreamer_core.accounting import count_copies

    x = torch.randn(64, 32)
    copies = count_copies(lambda: (x.bfloat16(), x.t().contiguous(), x.view(32, 64), x.float()))
    assert copies.count == {("float32", "bfloat16"): 1, ("float32", "float32"): 1}, copies.count
    assert copies.nbytes == {("float32", "bfloat16"): 64 * 32 * 2, ("float32", "float32"): 64 * 32 * 4}
    assert (copies.total, copies.casts) == (2, 1)
