"""Shared test helpers: where the reference data lives.

The repository carries what the fidelity tests need (``reference/``: the tiny parity
fixture set made by the official code, the chicken example, the cameras, the Pillow 10
preprocessing digests). A ``../shared`` folder beside the checkout may add more: further
parity sets and the reference's test inputs."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "reference"
SHARED = ROOT.parent / "shared"
#: The chicken example, the 16 cameras.
DATA = REFERENCE
#: The reference's 49 RGBA test inputs (only beside the checkout).
TESTSET = SHARED / "data" / "syncdreamer-ref" / "testset"

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def fixture_sets() -> dict[str, Path]:
    """Every parity fixture set: the repository's, then any more in ../shared."""
    found = {}
    for folder in (REFERENCE / "fixtures", SHARED / "fixtures"):
        if folder.is_dir():
            for path in sorted(folder.glob("parity-*")):
                found.setdefault(path.name, path)
    return found


def require(path: Path, what: str) -> Path:
    """Skip (with the reason) when optional data beside the checkout is absent."""
    if not path.exists():
        pytest.skip(f"{what} not found at {path} (it comes with ../shared beside the checkout)")
    return path


def paint_square_decoder(state: dict, prefix: str = "first_stage_model.") -> dict:
    """Set a VAE decoder (LDM layout) so that, whatever the latent, it draws a dark square
    on a white background (about 190 of 256 pixels wide): views an untrained network makes
    then hold an object on white, so the steps after sampling (masks, ranking, carving,
    meshing, baking) have something to work on.

    conv_in gives a constant; every later 3x3 convolution is a per-channel box filter, whose
    zero padding darkens a band along the border at each layer (a wide band at the 32x32
    level, 8 output pixels a latent pixel); normalisations turn that into a high centre and
    a low border, attention and shortcuts pass it on, and conv_out inverts it."""
    import torch

    for key in list(state):
        if not key.startswith((prefix + "decoder.", prefix + "post_quant_conv.")):
            continue
        value = torch.zeros_like(state[key])
        if value.ndim == 4 and key.split(".")[-2] not in ("q", "k", "v", "proj_out"):
            for channel in range(min(value.shape[0], value.shape[1])):
                value[channel, channel] = 1.0 / value[0, 0].numel()
        elif key.endswith("weight") and "norm" in key:
            value = torch.ones_like(value)
        state[key] = value
    state[prefix + "post_quant_conv.weight"].zero_()
    state[prefix + "decoder.conv_in.bias"].fill_(1.0)
    state[prefix + "decoder.conv_out.weight"].mul_(-2.0)
    state[prefix + "decoder.conv_out.bias"].fill_(0.6)
    return state
