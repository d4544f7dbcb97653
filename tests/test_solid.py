"""Every mesh the pack exports is a solid a slicer and a game engine take as it is: a
closed, consistently outward-wound 2-manifold with no degenerate face, in one body unless
the object has several, its volume within 2 % of the undecimated surface, at every face
budget, for fast and quality reconstruction, with cleanup on and off, textured or with
vertex colours, in every format; STL and 3MF at the size asked for, in millimetres."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh
from helpers import ROOT, fast_tiny_config, read_3mf

from syncdreamer_core.files import EXAMPLES, load_views
from syncdreamer_core.recon import make_asset, reconstruct_fast
from syncdreamer_core.recon.export import export_asset
from syncdreamer_core.recon.mesh_tools import is_solid

BUDGETS = (0, 1000, 5000, 30000, 60000)


def thin_part_views() -> np.ndarray:
    """A mug with a thin handle (a torus a few voxels thick) rendered at the 16 cameras."""
    from syncdreamer_core.cameras import target_cameras
    from syncdreamer_core.recon.asset import MeshAsset
    from syncdreamer_core.recon.raycast import cast, shade_asset

    body = trimesh.creation.cylinder(radius=0.2, height=0.45, sections=48)
    handle = trimesh.creation.torus(major_radius=0.12, minor_radius=0.025)
    handle.apply_transform(trimesh.transformations.rotation_matrix(np.pi / 2, [1, 0, 0]))
    handle.apply_translation([0.27, 0, 0])
    mug = trimesh.util.concatenate([body, handle])
    colours = np.tile(np.array([[0.8, 0.3, 0.2]], np.float32), (len(mug.vertices), 1))
    asset = MeshAsset(np.asarray(mug.vertices, np.float32), np.asarray(mug.faces), vertex_colors=colours)
    cameras = target_cameras()
    views = [shade_asset(asset, cast(mug, cameras, view), light=0.4) for view in range(16)]
    return (np.stack(views) * 255).round().astype(np.uint8)


def tiny_network_views() -> np.ndarray:
    """What the tiny random network (with the square-painting VAE) makes of the teapot."""
    from syncdreamer_core.pipeline import SyncDreamerPipeline
    from syncdreamer_core.weights.checkpoint import load_checkpoint
    from syncdreamer_core.weights.official_layout import paint_square_decoder, random_checkpoint

    pipe = SyncDreamerPipeline(load_checkpoint(paint_square_decoder(random_checkpoint(fast_tiny_config(), seed=3))), 16)
    from syncdreamer_core.files import read_image

    views = pipe(read_image(EXAMPLES / "teapot.png"), 30, 200, steps=1, seed=2).views[0]
    return (views.clamp(0, 1) * 255).to(torch.uint8).numpy()


INPUTS = {
    "chicken-pr": lambda: load_views(EXAMPLES / "chicken-views.png"),
    "chicken-gt": lambda: load_views(ROOT / "reference" / "eval_examples" / "chicken-gt"),
    "thin-handled mug": thin_part_views,
    "teapot through the tiny network": tiny_network_views,
}


@pytest.fixture(scope="module", params=list(INPUTS))
def reconstruction(request):
    views = INPUTS[request.param]()
    return request.param, reconstruct_fast(views, resolution=96, return_details=True)


def reloaded(path) -> trimesh.Trimesh:
    """The file as a slicer reads it: one mesh, vertices merged by position."""
    mesh = trimesh.load(str(path), force="mesh", process=False)
    mesh.merge_vertices(merge_tex=True, merge_norm=True)
    return mesh


def test_every_budget_gives_a_closed_solid_of_the_same_volume(reconstruction, tmp_path):
    name, result = reconstruction
    reference = make_asset(result, None, 0)
    whole = trimesh.Trimesh(reference.vertices, reference.faces, process=False)
    whole.merge_vertices()
    assert is_solid(whole), name
    bodies = len(whole.split(only_watertight=False))
    for budget in BUDGETS[1:]:
        asset = make_asset(result, None, budget)
        path = tmp_path / f"{budget}.glb"
        export_asset(asset, path)
        mesh = reloaded(path)
        assert is_solid(mesh), (name, budget)
        assert len(mesh.faces) <= budget and len(mesh.split(only_watertight=False)) == bodies, (name, budget)
        assert abs(mesh.volume / whole.volume - 1) <= 0.02, (name, budget, mesh.volume / whole.volume)
    print(f"{name}: {bodies} body/bodies, closed at budgets {BUDGETS}")


@pytest.fixture(scope="module")
def chicken():
    return reconstruct_fast(load_views(EXAMPLES / "chicken-views.png"), resolution=96, return_details=True)


@pytest.mark.parametrize("file_format", ["glb", "obj", "ply"])
def test_every_render_format_holds_a_closed_solid_textured_or_coloured(chicken, tmp_path, file_format):
    for texture in (512, None):
        asset = make_asset(chicken, texture, 30000, cleanup=texture is None)
        path = tmp_path / f"mesh-{texture}.{file_format}"
        export_asset(asset, path)
        assert is_solid(reloaded(path)), (file_format, texture)


@pytest.mark.parametrize("file_format", ["stl", "3mf"])
def test_every_print_format_holds_a_closed_solid_at_the_size_asked_for(reconstruction, tmp_path, file_format):
    name, result = reconstruction
    for texture in (512, None):
        asset = make_asset(result, texture, 30000, cleanup=texture is None)
        path = tmp_path / f"mesh-{texture}.{file_format}"
        export_asset(asset, path, print_size_mm=80.0)
        mesh = read_3mf(path) if file_format == "3mf" else reloaded(path)
        assert is_solid(mesh), (name, file_format, texture)
        # millimetres, standing on the build plate (z up)
        assert mesh.extents[2] == pytest.approx(80.0, abs=0.01) and mesh.bounds[0, 2] == pytest.approx(0, abs=1e-3)


def test_quality_reconstruction_exports_a_closed_solid(tmp_path):
    from syncdreamer_core.recon import reconstruct_quality

    result = reconstruct_quality(load_views(EXAMPLES / "chicken-views.png"), steps=20, resolution=48,
                                 mesh_resolution=96, return_details=True)
    for budget in (0, 5000):
        path = tmp_path / f"quality-{budget}.stl"
        export_asset(make_asset(result, None, budget), path, print_size_mm=50.0)
        assert is_solid(reloaded(path)), budget


def test_a_flat_base_stands_on_the_plate_and_the_report_tells_the_truth(tmp_path):
    from syncdreamer_core.recon.printing import for_print

    result = reconstruct_fast(load_views(EXAMPLES / "chicken-views.png"), resolution=96, return_details=True)
    asset = make_asset(result, 512, 30000)
    plain, _, plain_report = for_print(asset, 80.0)
    based, colours, report = for_print(asset, 80.0, flat_base=True)
    assert report.watertight and report.bodies == 1 and report.size_mm[1] == pytest.approx(80.0, abs=0.01)
    # the base: faces lying flat on the plate (y = 0, facing down), more of them than the object has by itself

    def on_plate(mesh):
        flat = (mesh.triangles_center[:, 1] < 1e-6) & (mesh.face_normals[:, 1] < -0.999)
        return mesh.area_faces[flat].sum()

    assert on_plate(based) > max(100.0, 1.2 * on_plate(plain)), (on_plate(based), on_plate(plain))
    assert report.volume_ml == pytest.approx(abs(based.volume) / 1000, rel=1e-3) and report.volume_ml > 1
    assert 0.9 < report.volume_ml / plain_report.volume_ml < 1.1
    assert colours.shape == (len(based.vertices), 3) and colours.std() > 0.02
    longest, _, by_longest = for_print(asset, 80.0, "longest side")
    assert max(by_longest.size_mm) == pytest.approx(80.0, abs=0.01)


# ---------------------------------------------------------------- meshes a printer cannot take

def flat_square(colours: bool):
    """A square with no height (SyncDreamer's frame is z up: zero extent along z)."""
    from syncdreamer_core.recon.asset import MeshAsset

    vertices = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], np.float32)
    faces = np.array([[0, 1, 2], [0, 2, 3]])
    return MeshAsset(vertices, faces, vertex_colors=np.full((4, 3), 0.5, np.float32) if colours else None)


@pytest.mark.parametrize("colours", [False, True])
@pytest.mark.parametrize("file_format", ["stl", "3mf"])
def test_a_mesh_without_height_is_refused_by_name_with_its_sizes(tmp_path, file_format, colours):
    from syncdreamer_core.recon.printing import PrintError, for_print

    with pytest.raises(PrintError, match=r"mesh_1 has no height to scale: it measures 1 x 0 x 1 \(w x h x d, y up\), so "
                                         r"no scale makes it 100 mm tall.*or size it by its longest side"):
        for_print(flat_square(colours), 100.0, "height", name="mesh_1")
    with pytest.raises(PrintError):
        export_asset(flat_square(colours), tmp_path / f"flat.{file_format}", print_size_mm=100.0)
    assert not (tmp_path / f"flat.{file_format}").exists()


def test_a_flat_mesh_prints_by_its_longest_side_and_saves_as_glb(tmp_path):
    from syncdreamer_core.recon.printing import for_print

    solid, _, report = for_print(flat_square(False), 50.0, "longest side")
    assert np.isfinite(solid.vertices).all() and max(report.size_mm) == pytest.approx(50.0, rel=1e-3)
    assert export_asset(flat_square(True), tmp_path / "flat.glb") == [str(tmp_path / "flat.glb")]


def test_a_print_larger_than_any_printer_is_told_in_the_report():
    from syncdreamer_core.recon.asset import MeshAsset
    from syncdreamer_core.recon.printing import for_print

    slab = trimesh.creation.box(extents=(1.0, 1.0, 0.001))  # 1 x 1 wide, 0.001 tall in the z-up frame
    asset = MeshAsset(np.asarray(slab.vertices, np.float32), np.asarray(slab.faces))
    _, _, report = for_print(asset, 100.0, "height")
    assert report.size_mm[0] == pytest.approx(100_000, rel=1e-3)
    assert report.warnings and "100000 mm wide: larger than any printer (1000 mm)" in report.describe()
    _, _, fine = for_print(asset, 100.0, "longest side")
    assert fine.warnings == ()


@pytest.mark.parametrize("file_format", ["glb", "obj", "ply", "stl", "3mf"])
def test_no_nan_or_infinity_ever_reaches_a_file(tmp_path, file_format, monkeypatch):
    from syncdreamer_core.recon import asset as asset_module
    from syncdreamer_core.recon.formats import ExportError

    box = trimesh.creation.box()
    asset = asset_module.MeshAsset(np.asarray(box.vertices, np.float32), np.asarray(box.faces))
    turned = asset.to_y_up()
    turned.vertices[0, 1] = np.nan  # what a broken transform would leave, after every check of the asset
    monkeypatch.setattr(asset_module.MeshAsset, "to_y_up", lambda self: turned)
    target = tmp_path / f"broken.{file_format}"
    with pytest.raises((ExportError, ValueError), match="NaN or infinite"):
        export_asset(asset, target)
    assert not target.exists()
