"""bf16 on CPUs that have it: attention runs in float32 there (torch's CPU kernel computes
bf16 attention at half its float32 rate), every other matrix product and convolution in
bf16, and the norms take the bf16 activations without copying them to float32 and back
(torch's CPU kernels normalise in float32 by themselves). The speed is measured on such a
CPU by bench/bench_sampler.py; here the precision of each op and the numbers are checked."""

from __future__ import annotations

import torch

from syncdreamer_core.accounting import Accounting, aten
from syncdreamer_core.network.attention import BasicTransformerBlock
from syncdreamer_core.network.norms import GroupNorm, LayerNorm


def test_a_bf16_transformer_block_on_the_cpu_runs_attention_in_float32_and_the_rest_in_bf16():
    torch.manual_seed(0)
    block = BasicTransformerBlock(64, 4, 16, context_dim=32).eval()
    x, context = torch.randn(2, 256, 64), torch.randn(2, 7, 32)
    with torch.inference_mode():
        reference = block(x, context)
        half = block.to(torch.bfloat16)
        with Accounting(devices=("cpu",)) as counted:
            out = half(x.bfloat16(), context.bfloat16())
    ops = {(dtype, op) for (_, dtype, op) in counted.ledger.op_flops}
    attention = {op for dtype, op in ops if "attention" in op}
    assert attention and all(("float32", op) in ops for op in attention), ops
    assert {dtype for dtype, op in ops if "attention" not in op} == {"bfloat16"}, ops
    assert out.dtype == torch.bfloat16
    assert float((out.float() - reference).norm() / reference.norm()) < 0.02


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
