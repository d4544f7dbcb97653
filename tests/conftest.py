"""Fixtures shared by the tests: small random models in the official layout."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import helpers  # noqa: E402,F401 - puts the project on sys.path

# Test files run in parallel processes (pytest-xdist, see pyproject.toml): the cores are split
# between them so that torch's thread pools do not oversubscribe the machine.
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"])))


@pytest.fixture(scope="session")
def tiny_checkpoint():
    """A randomly initialised checkpoint in the official layout (tiny network, small VAE/CLIP)."""
    from helpers import fast_tiny_config

    from syncdreamer_core.weights.official_layout import random_checkpoint

    return random_checkpoint(fast_tiny_config(), seed=3)


@pytest.fixture(scope="session")
def tiny_loaded(tiny_checkpoint):
    from syncdreamer_core.weights.checkpoint import load_checkpoint

    return load_checkpoint(tiny_checkpoint)


@pytest.fixture(scope="session")
def tiny_pipeline(tiny_loaded):
    from syncdreamer_core.pipeline import SyncDreamerPipeline

    return SyncDreamerPipeline(tiny_loaded, batch_view_num=8)


@pytest.fixture
def random_cond():
    from syncdreamer_core.diffusion.denoiser import Conditioning

    generator = torch.Generator().manual_seed(11)
    return Conditioning(
        torch.randn(1, 1, 768, generator=generator),
        torch.randn(1, 4, 32, 32, generator=generator) * 0.8,
        torch.tensor([0.3]),
    )


@pytest.fixture(scope="module")
def host(tmp_path_factory, tiny_checkpoint):
    """The pack in ComfyUI stand-ins with a tiny checkpoint loaded (see node_host.py)."""
    from node_host import load_pack

    return load_pack(tmp_path_factory.mktemp("comfy"), tiny_checkpoint)
