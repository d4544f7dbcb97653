"""The asset a user takes home: texture baking, colour spaces in every format, mesh tools,
the turntable and the candidate ranking."""

from __future__ import annotations

import numpy as np
import pygltflib
import pytest
import trimesh
from helpers import DATA, TESTSET
from PIL import Image

from syncdreamer_core.colorspace import linear_to_srgb, srgb_to_linear
from syncdreamer_core.files import EXAMPLES, load_views
from syncdreamer_core.recon import make_asset, reconstruct_fast
from syncdreamer_core.recon.asset import MeshAsset, MeshAssetError
from syncdreamer_core.recon.export import export_asset


@pytest.fixture(scope="module")
def chicken():
    views = load_views(EXAMPLES / "chicken-views.png")
    return views, reconstruct_fast(views, resolution=96, return_details=True)


@pytest.fixture(scope="module")
def textured(chicken):
    return make_asset(chicken[1], texture_size=512, max_faces=10000)


def test_srgb_and_linear_round_trip_and_hit_known_values():
    assert np.isclose(srgb_to_linear(np.array([0.5]))[0], 0.21404, atol=1e-4)
    values = np.linspace(0, 1, 101)
    assert np.allclose(linear_to_srgb(srgb_to_linear(values)), values, atol=1e-5)


def test_the_texture_is_baked_from_the_views_with_one_uv_per_vertex(chicken, textured):
    views, _ = chicken
    assert textured.textured and textured.texture.shape == (512, 512, 3)
    assert len(textured.uvs) == len(textured.vertices) == len(textured.normals) and len(textured.faces) <= 10000
    assert textured.uvs.min() >= 0 and textured.uvs.max() <= 1
    # The chicken's colours are in the texture: yellow, red and orange rings, not grey or white.
    pixels = textured.texture.reshape(-1, 3).astype(float)
    saturated = (pixels.max(1) - pixels.min(1)) > 80
    assert saturated.mean() > 0.3


def test_uv_seams_duplicate_vertices_but_keep_their_normals_equal(textured):
    rounded = np.round(textured.vertices, 6)
    _, first, inverse = np.unique(rounded, axis=0, return_index=True, return_inverse=True)
    assert len(first) < len(textured.vertices)  # seams exist
    assert np.allclose(textured.normals, textured.normals[first][inverse.reshape(-1)], atol=1e-5)


def test_the_textured_mesh_rendered_at_a_camera_looks_like_that_view(chicken, textured):
    from syncdreamer_core.cameras import target_cameras
    from syncdreamer_core.recon.raycast import cast, shade_asset

    views, result = chicken
    placed = MeshAsset(textured.vertices - result.recentring.astype(np.float32), textured.faces, textured.normals,
                       textured.uvs, textured.texture)
    hits = cast(placed.to_trimesh(), target_cameras(), 4)
    rendered = shade_asset(placed, hits)
    region = hits.mask & result.views.masks[4]
    error = np.sqrt(((rendered[region] - result.views.colors[4][region]) ** 2).mean())
    assert region.mean() > 0.1 and error < 0.12, error


@pytest.mark.parametrize("size", [1000, 8192, 0, "1024"])
def test_texture_sizes_must_be_powers_of_two_up_to_4096(chicken, size):
    with pytest.raises(ValueError, match="power of two from 256 to 4096"):
        make_asset(chicken[1], texture_size=size)


def test_glb_carries_uvs_and_an_embedded_srgb_png_texture(tmp_path, textured):
    export_asset(textured, tmp_path / "a.glb")
    gltf = pygltflib.GLTF2().load(str(tmp_path / "a.glb"))
    primitive = gltf.meshes[0].primitives[0]
    assert primitive.attributes.TEXCOORD_0 is not None and primitive.attributes.NORMAL is not None
    assert gltf.materials[0].pbrMetallicRoughness.baseColorTexture.index == 0
    assert gltf.images[0].mimeType == "image/png"
    reloaded = trimesh.load(tmp_path / "a.glb", force="mesh", process=False)
    assert len(reloaded.vertices) == len(textured.vertices)
    assert np.asarray(reloaded.visual.material.baseColorTexture).shape[:2] == (512, 512)


def test_a_saved_glb_reads_back_as_the_same_asset(tmp_path, textured):
    from syncdreamer_core.recon.export import read_glb

    for up in ("y", "z"):
        export_asset(textured, tmp_path / f"{up}.glb", up_axis=up)
        back = read_glb(tmp_path / f"{up}.glb", up_axis=up)
        assert np.allclose(back.vertices, textured.vertices, atol=1e-5) and (back.faces == textured.faces).all()
        assert np.allclose(back.uvs, textured.uvs, atol=1e-6) and (back.texture == textured.texture).all()
    box = trimesh.creation.box()
    srgb = np.linspace(0.1, 0.9, len(box.vertices) * 3).reshape(-1, 3).astype(np.float32)
    export_asset(MeshAsset(box.vertices, box.faces, vertex_colors=srgb), tmp_path / "v.glb")
    assert np.allclose(read_glb(tmp_path / "v.glb").vertex_colors, srgb, atol=1e-5)


def test_glb_vertex_colours_are_stored_linear(tmp_path):
    box = trimesh.creation.box()
    srgb = np.full((len(box.vertices), 3), 0.5, np.float32)
    export_asset(MeshAsset(box.vertices, box.faces, vertex_colors=srgb), tmp_path / "v.glb")
    gltf = pygltflib.GLTF2().load(str(tmp_path / "v.glb"))
    accessor = gltf.accessors[gltf.meshes[0].primitives[0].attributes.COLOR_0]
    view = gltf.bufferViews[accessor.bufferView]
    blob = gltf.binary_blob()
    colours = np.frombuffer(blob[view.byteOffset:view.byteOffset + view.byteLength], np.float32).reshape(-1, 3)
    assert accessor.componentType == pygltflib.FLOAT and np.allclose(colours, 0.21404, atol=1e-4)


def test_y_up_export_turns_the_object_upright_and_z_keeps_the_frame(tmp_path, textured):
    export_asset(textured, tmp_path / "y.ply", up_axis="y")
    export_asset(textured, tmp_path / "z.ply", up_axis="z")
    y = trimesh.load(tmp_path / "y.ply", process=False).vertices
    z = trimesh.load(tmp_path / "z.ply", process=False).vertices
    assert np.allclose(y[:, 1], z[:, 2], atol=1e-5) and np.allclose(y[:, 2], -z[:, 1], atol=1e-5)


def test_obj_comes_with_its_material_and_texture(tmp_path, textured):
    written = export_asset(textured, tmp_path / "m.obj")
    assert {p.rsplit(".", 1)[1] for p in written} == {"obj", "mtl", "png"}
    assert "map_Kd m.png" in (tmp_path / "m.mtl").read_text() and "Kd 1 1 1" in (tmp_path / "m.mtl").read_text()
    reloaded = trimesh.load(tmp_path / "m.obj", process=False)
    assert reloaded.visual.kind == "texture"


def test_empty_or_broken_meshes_are_refused_before_writing(tmp_path):
    with pytest.raises(MeshAssetError, match="empty"):
        MeshAsset(np.zeros((0, 3)), np.zeros((0, 3)))
    with pytest.raises(MeshAssetError, match="face indices"):
        MeshAsset(np.zeros((3, 3)), np.array([[0, 1, 5]]))
    with pytest.raises(MeshAssetError, match="NaN"):
        MeshAsset(np.full((3, 3), np.nan), np.array([[0, 1, 2]]))
    assert not list(tmp_path.iterdir())


def test_decimation_and_cleanup(chicken):
    _, result = chicken
    asset = make_asset(result, texture_size=None, max_faces=3000, cleanup=True)
    mesh = trimesh.Trimesh(asset.vertices, asset.faces)
    assert len(asset.faces) <= 3000 and len(mesh.split(only_watertight=False)) == 1
    assert asset.vertex_colors is not None and not asset.textured
    with pytest.raises(ValueError, match="at least 100 faces"):
        make_asset(result, texture_size=None, max_faces=50)


def test_turntable_shows_the_object_from_every_side(textured):
    from syncdreamer_core.recon.turntable import turntable

    frames = turntable(textured, frames=8, elevation_deg=15, size=64)
    assert frames.shape == (8, 64, 64, 3)
    covered = (frames < 0.95).any(-1).mean((1, 2))
    assert (covered > 0.05).all()
    assert all(np.abs(frames[i] - frames[(i + 4) % 8]).mean() > 0.01 for i in range(4))  # front differs from back
    with pytest.raises(ValueError, match="frames"):
        turntable(textured, frames=0)


# ---------------------------------------------------------------- ranking candidates

def _on_white(array: np.ndarray) -> np.ndarray:
    array = array.astype(np.float32) / 255
    if array.shape[-1] == 4:
        array = array[..., :3] * array[..., 3:] + 1 - array[..., 3:]
    return (array * 255).round().astype(np.uint8)


def _other_object() -> np.ndarray:
    source = TESTSET / "teapot.png" if TESTSET.exists() else EXAMPLES / "teapot.png"
    return _on_white(np.asarray(Image.open(source).convert("RGBA").resize((256, 256))))


@pytest.mark.parametrize("name", ["chicken-pr", "chicken-gt"])
def test_ranking_puts_the_true_views_above_corrupted_ones(name):
    from syncdreamer_core.recon.ranking import rank_candidates

    views = np.stack([_on_white(np.asarray(Image.open(DATA / "eval_examples" / name / f"{i:03d}.png")))
                      for i in range(16)])
    mirrored = views.copy()
    mirrored[2] = mirrored[2][:, ::-1]
    swapped = views.copy()
    swapped[[3, 11]] = swapped[[11, 3]]
    replaced = views.copy()
    replaced[7] = _other_object()
    ranking = rank_candidates(np.concatenate([mirrored, swapped, views, replaced]))
    assert ranking[0].index == 2, [s.describe() for s in ranking]
    assert ranking[0].score > max(s.score for s in ranking[1:])
