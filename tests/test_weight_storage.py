"""fp16 weight storage with fp32 compute: half the weight memory, exactly the numbers
of the fp16-rounded weights computed in fp32."""

from __future__ import annotations

import json

import torch
from helpers import fixture_sets
from safetensors.torch import load_file

from syncdreamer_core.conditioning import Conditioning
from syncdreamer_core.diffusion.denoiser import SyncDenoiser
from syncdreamer_core.weights.checkpoint import NETWORK_BUFFERS, load_checkpoint
from syncdreamer_core.weights.storage import stored_weight_bytes


def test_fp16_storage_equals_rounded_weights_in_fp32():
    root = fixture_sets()["parity-t"]
    heads = json.loads((root / "config.json").read_text())["num_heads"]
    state = load_file(str(root / "weights.safetensors"))
    rounded = {k: v if k in NETWORK_BUFFERS or not v.is_floating_point() else v.half().float()
               for k, v in state.items()}
    wide = load_checkpoint(rounded, dtype="fp32", num_heads=heads, with_vae=False, with_clip=False).model
    narrow = load_checkpoint(root / "weights.safetensors", dtype="fp32", weight_dtype="fp16", num_heads=heads,
                             with_vae=False, with_clip=False).model

    assert stored_weight_bytes(narrow) * 2 == stored_weight_bytes(wide)
    assert all(p.dtype == torch.float16 for p in narrow.parameters())
    assert narrow.dtype == torch.float32 and narrow.poses.dtype == torch.float32

    inputs = load_file(str(root / "inputs.safetensors"))
    cond = Conditioning(inputs["clip_embed"], inputs["x_input"], inputs["elevation_rad"])
    t = inputs["timestep"].reshape(-1).long()
    eps_wide = SyncDenoiser(wide, 8)(inputs["x_t"], t, cond, 2.0)
    eps_narrow = SyncDenoiser(narrow, 8)(inputs["x_t"], t, cond, 2.0)
    assert eps_narrow.dtype == torch.float32
    assert torch.equal(eps_narrow, eps_wide)
