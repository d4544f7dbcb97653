"""The pack on machines without the x86 wheels: Embree (fast ray casting) and xatlas (UV
unwrapping) are optional where they have no wheel (ARM Linux). Without Embree, rays are
cast by rasterization with the same hits; without xatlas, a texture becomes vertex
colours, said once."""

from __future__ import annotations

import logging
import time

import numpy as np
import pytest
import trimesh
from helpers import ROOT

from syncdreamer_core.files import EXAMPLES, load_views


def requirement_lines(name: str) -> list[str]:
    return [line for line in (ROOT / "requirements.txt").read_text().splitlines() if line.startswith(name)]


@pytest.mark.parametrize(("machine", "system", "wanted"), [
    ("x86_64", "linux", True), ("AMD64", "win32", True), ("arm64", "darwin", True), ("x86_64", "darwin", True),
    ("aarch64", "linux", False)])
def test_the_x86_only_wheels_are_asked_for_only_where_they_exist(machine, system, wanted):
    from packaging.requirements import Requirement

    environment = {"platform_machine": machine, "sys_platform": system}
    for name in ("embreex", "xatlas"):
        [line] = requirement_lines(name)
        assert Requirement(line).marker.evaluate(environment) is wanted, (name, machine, system)


@pytest.fixture(scope="module")
def chicken():
    from syncdreamer_core.recon import reconstruct_fast

    return reconstruct_fast(load_views(EXAMPLES / "chicken-views.png"), resolution=96, return_details=True)


def test_without_embree_the_hits_mesh_and_texture_are_embrees(chicken, monkeypatch):
    from syncdreamer_core.cameras import target_cameras
    from syncdreamer_core.recon import make_asset
    from syncdreamer_core.recon.raycast import cast

    if not trimesh.ray.has_embree:
        pytest.fail("embreex is installed with requirements.txt on this machine; the comparison needs it")
    mesh = trimesh.Trimesh(chicken.mesh.vertices, chicken.mesh.faces, process=False)
    started = time.perf_counter()
    with_embree = make_asset(chicken, 512, 5000)
    embree_seconds = time.perf_counter() - started
    embree_hits = [cast(mesh, target_cameras(), view) for view in (0, 7)]
    monkeypatch.setattr(trimesh.ray, "has_embree", False)
    started = time.perf_counter()
    without = make_asset(chicken, 512, 5000)
    raster_seconds = time.perf_counter() - started
    for view, hits in zip((0, 7), embree_hits, strict=True):
        raster = cast(trimesh.Trimesh(mesh.vertices, mesh.faces, process=False), target_cameras(), view)
        assert np.array_equal(raster.face, hits.face)  # the same triangle behind every pixel
        both = hits.mask
        assert np.abs(raster.depth[both] - hits.depth[both]).max() < 1e-4
    assert np.array_equal(without.vertices, with_embree.vertices) and np.array_equal(without.faces, with_embree.faces)
    difference = np.abs(without.texture.astype(np.int16) - with_embree.texture)
    print(f"asset (5000 faces, 512 texture): Embree {embree_seconds:.1f} s, rasterized {raster_seconds:.1f} s; texture "
          f"differs by {difference.mean():.5f} levels on average, {difference.max()} at most")
    assert difference.mean() < 0.01 and difference.max() <= 2


def test_without_xatlas_a_texture_becomes_vertex_colours_said_once(chicken, monkeypatch, caplog):
    import builtins

    from syncdreamer_core.recon import make_asset, texture

    real_import = builtins.__import__

    def no_xatlas(name, *args, **kwargs):
        if name == "xatlas":
            raise ImportError("No module named 'xatlas'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_xatlas)
    monkeypatch.setattr(texture, "_TOLD", False)
    caplog.set_level(logging.WARNING, logger="syncdreamer")
    first, second = make_asset(chicken, 512, 3000), make_asset(chicken, 512, 3000)
    assert not first.textured and first.vertex_colors is not None and not second.textured
    said = [r.getMessage() for r in caplog.records if "xatlas" in r.getMessage()]
    assert len(said) == 1 and "pip install xatlas" in said[0]
