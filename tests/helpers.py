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


def fast_tiny_config():
    """The tests' network: the tiny structure with attention only at the coarsest level
    (a step costs 40 % less; everything the tests check is the same)."""
    from syncdreamer_core.network.config import SyncDreamerConfig

    return SyncDreamerConfig.tiny().replace(attention_resolutions=(4,))


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


def read_3mf(path):
    """A 3MF read with the standard library: its unit, vertices, triangles and colours."""
    import io
    import xml.etree.ElementTree as ET
    import zipfile

    import numpy as np
    import trimesh

    with zipfile.ZipFile(path) as archive:
        assert {"[Content_Types].xml", "_rels/.rels", "3D/3dmodel.model"} <= set(archive.namelist())
        root = ET.parse(io.BytesIO(archive.read("3D/3dmodel.model"))).getroot()
    core = "{http://schemas.microsoft.com/3dmanufacturing/core/2015/02}"
    assert root.get("unit") == "millimeter"
    vertices = np.array([[float(v.get(a)) for a in "xyz"] for v in root.iter(core + "vertex")])
    faces = np.array([[int(t.get(k)) for k in ("v1", "v2", "v3")] for t in root.iter(core + "triangle")])
    colours = list(root.iter("{http://schemas.microsoft.com/3dmanufacturing/material/2015/02}color"))
    assert len(colours) == len(vertices)  # one colour per vertex, referenced by every triangle
    return trimesh.Trimesh(vertices, faces, process=False)


def fake_cpu(monkeypatch, flags: set[str]) -> None:
    """Make the pack see an x86 CPU with these /proc/cpuinfo flags."""
    from syncdreamer_core import hardware

    monkeypatch.setattr(hardware, "cpu_flags", lambda: frozenset(flags))
    monkeypatch.setattr(hardware.platform, "machine", lambda: "x86_64")
