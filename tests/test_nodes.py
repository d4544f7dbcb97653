"""The ComfyUI nodes, with small stand-ins for the host (see comfy_stubs.py)."""

from __future__ import annotations

import sys
import time

import comfy_stubs
import numpy as np
import pytest
import torch
from node_host import run
from PIL import Image

from syncdreamer_core.files import EXAMPLES


def teapot_image():
    rgba = np.asarray(Image.open(EXAMPLES / "teapot.png")).astype(np.float32) / 255
    image = torch.from_numpy(rgba[..., :3])[None]
    mask = torch.from_numpy(1.0 - rgba[..., 3])[None]  # as LoadImage gives it: 1 on the background
    return image, mask


def chicken_views() -> torch.Tensor:
    from syncdreamer_core.files import load_views

    return torch.from_numpy(load_views(EXAMPLES / "chicken-views.png").astype(np.float32) / 255)


@pytest.fixture(scope="module")
def prepared(host):
    image, mask = teapot_image()
    return run(host, "SyncDreamerPrepareImage", image=image, crop_size=180, mask=mask, mask_is_background=True).args


# ---------------------------------------------------------------- schema

def test_the_pack_loads_through_the_extension_entrypoint(host):
    import asyncio

    extension = asyncio.run(host["pack"].comfy_entrypoint())
    listed = asyncio.run(extension.get_node_list())
    assert [cls.GET_SCHEMA().node_id for cls in listed] == list(host["nodes"])
    assert len(listed) == 17 and not hasattr(host["pack"], "NODE_CLASS_MAPPINGS")


def test_every_node_describes_itself_and_every_input_and_output(host):
    titles = set()
    for node_id, cls in host["nodes"].items():
        schema = cls.GET_SCHEMA()
        assert schema.category == "SyncDreamer" and schema.description and schema.search_aliases, node_id
        assert schema.display_name not in titles, f"two nodes are called {schema.display_name}"
        titles.add(schema.display_name)
        for item in schema.inputs:
            assert item.tooltip, f"{node_id}.{item.id} has no tooltip"
        for item in schema.outputs:
            assert item.tooltip and item.display_name, f"{node_id} output {item.id}"


def test_schema_fields_a_host_does_not_know_are_left_out(host, monkeypatch):
    import dataclasses

    common = sys.modules["ComfyUI_SyncDreamer.nodes.common"]

    @dataclasses.dataclass
    class OldSchema:  # a 0.3.x schema: no search aliases
        node_id: str
        display_name: str = None
        category: str = "sd"

    monkeypatch.setattr(common.io, "Schema", OldSchema)
    made = common.schema(node_id="X", display_name="x", search_aliases=["y"])
    assert made == OldSchema("X", "x")


def test_model_folder_is_registered_and_listed(host):
    assert "syncdreamer" in host["folder_paths"].folder_names_and_paths
    spec = host["nodes"]["SyncDreamerCheckpointLoader"].INPUT_TYPES()["required"]["ckpt_name"]
    assert spec[0] == "COMBO" and "tiny.safetensors" in spec[1]["options"]


def test_examples_the_workflows_name_are_copied_into_the_input_folder(host):
    for name in host["pack"].EXAMPLE_INPUTS.values():
        assert (host["tmp"] / "input" / name).is_file()


# ---------------------------------------------------------------- loading

def test_loader_outputs_model_vae_and_clip_vision_and_caches(host):
    model, vae, clip_vision = host["loaded"]
    assert model.network.config.model_channels == 32
    assert hasattr(vae, "decode") and hasattr(vae, "encode") and hasattr(clip_vision, "encode_image")
    again = run(host, "SyncDreamerCheckpointLoader", ckpt_name="tiny.safetensors", dtype="fp32")
    assert again[0] is model


def test_loader_can_store_fp16_weights_and_compute_in_fp32(host):
    model = run(host, "SyncDreamerCheckpointLoader", ckpt_name="tiny.safetensors", dtype="fp16 weights, fp32 compute")[0]
    assert model is not host["loaded"][0]
    assert {p.dtype for p in model.network.parameters()} == {torch.float16}
    assert model.network.dtype == torch.float32
    with pytest.raises(ValueError, match="dtype must be one of"):
        run(host, "SyncDreamerCheckpointLoader", ckpt_name="tiny.safetensors", dtype="fp8")
    run(host, "SyncDreamerCheckpointLoader", ckpt_name="tiny.safetensors", dtype="fp32")  # restore the cache


def test_missing_checkpoint_file_is_a_clear_error(host):
    with pytest.raises(ValueError, match="not found in models/syncdreamer"):
        run(host, "SyncDreamerCheckpointLoader", ckpt_name="nope.ckpt", dtype="fp32")


# ---------------------------------------------------------------- preparing

def test_prepare_gives_256_white_background_images(prepared):
    image, mask = prepared
    assert image.shape == (1, 256, 256, 3) and mask.shape == (1, 256, 256)
    assert 0 <= float(image.min()) and float(image.max()) <= 1
    assert torch.allclose(image[0][mask[0] == 0], torch.ones(3))


def test_prepare_accepts_a_foreground_mask_with_the_toggle_off(host, prepared):
    image, mask = teapot_image()
    out, _ = run(host, "SyncDreamerPrepareImage", image=image, crop_size=180, mask=1.0 - mask, mask_is_background=False)
    assert torch.allclose(out, prepared[0])


def test_prepare_prepares_every_image_of_a_batch(host, prepared):
    image, mask = teapot_image()
    out, masks = run(host, "SyncDreamerPrepareImage", image=torch.cat([image, image.flip(2)]), crop_size=180,
                     mask=torch.cat([mask, mask.flip(2)]))
    assert out.shape[0] == masks.shape[0] == 2
    assert torch.equal(out[0], prepared[0][0]) and not torch.equal(out[1], out[0])


@pytest.mark.parametrize("bad,message", [
    (lambda image, mask: {"image": image, "crop_size": 180, "mask": torch.ones_like(mask)}, "mask_is_background"),
    (lambda image, mask: {"image": torch.zeros(1, 64, 64, 2), "crop_size": 200}, r"\[B, H, W, 3\|4\]"),
    (lambda image, mask: {"image": image * 255, "crop_size": 180, "mask": mask}, "divide by 255"),
    (lambda image, mask: {"image": image.masked_fill(image > 0.9, float("nan")), "crop_size": 180}, "NaN"),
    (lambda image, mask: {"image": image, "crop_size": 180, "mask": mask[:, :100]}, "same size"),
    (lambda image, mask: {"image": image, "crop_size": 2, "mask": mask}, "crop_size must be -1 .* or 16..256 pixels"),
])
def test_prepare_refuses_unusable_inputs_with_a_message(host, bad, message):
    image, mask = teapot_image()
    with pytest.raises(ValueError, match=message):
        run(host, "SyncDreamerPrepareImage", **bad(image, mask))


def test_white_background_mask_node(host):
    image = torch.ones(1, 64, 64, 3)
    image[:, 20:40, 10:30] = 0.2
    (mask,) = run(host, "SyncDreamerWhiteBackgroundMask", image=image).args
    assert mask.shape == (1, 64, 64) and float(mask.sum()) == 400
    with pytest.raises(ValueError, match="background is not white"):
        run(host, "SyncDreamerWhiteBackgroundMask", image=torch.rand(1, 64, 64, 3) * 0.5)


# ---------------------------------------------------------------- sampling

def sample(host, image, sampler_name="ddim", scheduler="ddim_uniform", seed=5, steps=2, batch_size=1, **kw):
    model, vae, _ = host["loaded"]
    return run(host, "SyncDreamerSampler", syncdreamer_model=model, vae=vae, image=image, elevation=kw.pop("elevation", 0.0),
               seed=seed, steps=steps, cfg=kw.pop("cfg", 2.0), sampler_name=sampler_name, scheduler=scheduler,
               eta=kw.pop("eta", 1.0), batch_size=batch_size, batch_view_num=kw.pop("bvn", 8), **kw)[0]["samples"]


def test_sampler_outputs_sixteen_raw_latents_per_candidate_with_progress_and_previews(host, prepared):
    comfy_stubs.ProgressBar.updates.clear()
    comfy_stubs.Previewer.shapes.clear()
    a = sample(host, prepared[0], batch_size=2)
    b = sample(host, prepared[0], batch_size=2)
    assert a.shape == (32, 4, 32, 32) and torch.equal(a, b)
    assert not torch.allclose(a[:16], a[16:])
    assert [u[:2] for u in comfy_stubs.ProgressBar.updates[:4]] == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert comfy_stubs.Previewer.shapes[0] == (1, 4, 128, 128)  # the 16 views as one 4x4 grid latent


@pytest.mark.parametrize("sampler_name,scheduler", [("ddim", "ddim_uniform"), ("euler_ancestral", "karras")])
def test_candidate_k_of_a_batch_is_the_single_run_with_seed_plus_k(host, prepared, sampler_name, scheduler):
    batch = sample(host, prepared[0], sampler_name, scheduler, seed=20, batch_size=2)
    alone = sample(host, prepared[0], sampler_name, scheduler, seed=21, batch_size=1)
    assert torch.equal(batch[16:32], alone)


def test_every_image_of_a_batch_gets_its_own_views(host, prepared):
    image, mask = teapot_image()
    two, _ = run(host, "SyncDreamerPrepareImage", image=torch.cat([image, image.flip(2)]), crop_size=180,
                 mask=torch.cat([mask, mask.flip(2)]))
    both = sample(host, two, seed=9)
    assert both.shape == (32, 4, 32, 32)
    second_image = sample(host, two[1:], seed=10)  # instance 1 = image 1's only candidate
    assert torch.equal(both[16:32], second_image)


def test_node_and_command_line_pipeline_give_the_same_latents_bitwise(host, prepared, tiny_checkpoint):
    """The same image, checkpoint and seed through the node and through syncdreamer_core's
    pipeline (what the command line runs): the same numbers, not merely close ones."""
    from syncdreamer_core.constants import VAE_SCALE_FACTOR
    from syncdreamer_core.pipeline import SyncDreamerPipeline
    from syncdreamer_core.weights.checkpoint import load_checkpoint

    node = sample(host, prepared[0], seed=7, steps=2, batch_size=2)
    pipe = SyncDreamerPipeline(load_checkpoint(host["tmp"] / "models" / "syncdreamer" / "tiny.safetensors"))
    image = Image.open(EXAMPLES / "teapot.png")
    core = pipe(image, 0.0, 180, sample_count=2, steps=2, cfg_scale=2.0, eta=1.0, seed=7).latents
    assert torch.equal(node, core.reshape(node.shape) / VAE_SCALE_FACTOR)  # the LATENT holds raw latents


def test_other_samplers_and_schedulers_run(host, prepared):
    assert torch.isfinite(sample(host, prepared[0], sampler_name="euler_ancestral", scheduler="karras")).all()


def test_batch_view_num_does_not_change_the_result(host, prepared):
    assert torch.allclose(sample(host, prepared[0], bvn=16), sample(host, prepared[0], bvn=3), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("change,message", [
    ({"sampler_name": "warp"}, "sampler_name must be one of"),
    ({"cfg": float("nan")}, "cfg must be a finite number"),
    ({"eta": float("inf")}, "eta must be a finite number"),
    ({"elevation": float("nan")}, "elevation must be a finite number"),
    ({"seed": 2**64}, "seed must be an integer in 0..2\\*\\*64-1"),
])
def test_bad_sampler_inputs_are_clear_errors(host, prepared, change, message):
    with pytest.raises(ValueError, match=message):
        sample(host, prepared[0], **change)


def test_wrong_image_size_is_a_clear_error(host):
    with pytest.raises(ValueError, match="256x256 output of 'SyncDreamer Prepare Image'"):
        sample(host, torch.zeros(1, 128, 128, 3))


def test_cancel_is_honoured_between_view_chunks_not_only_between_steps(host, prepared):
    mm = host["mm"]
    start = mm.state["checks"]
    mm.state.update(interrupt_after=start + 1)
    try:
        with pytest.raises(comfy_stubs.Interrupted):
            sample(host, prepared[0], steps=5, bvn=4)
    finally:
        mm.state["interrupt_after"] = None
    assert mm.state["checks"] == start + 2  # the second chunk of the first step


def test_guider_and_ddim_sampler_pieces_for_sampler_custom_advanced(host, prepared):
    model, vae, _ = host["loaded"]
    (guider,) = run(host, "SyncDreamerGuider", syncdreamer_model=model, vae=vae, image=prepared[0], elevation=0.0,
                    cfg=2.0, batch_view_num=8).args
    (sampler,) = run(host, "SyncDreamerDDIMSampler", syncdreamer_model=model, eta=1.0).args
    (empty,) = run(host, "SyncDreamerEmptyLatent", batch_size=1).args
    sigmas = comfy_stubs.ddim_uniform(model.model.model_sampling, 3)
    noise = torch.randn(empty["samples"].shape, generator=torch.manual_seed(7))
    out = guider.sample(noise, empty["samples"], sampler, sigmas, seed=7)
    assert torch.equal(out, sample(host, prepared[0], seed=7, steps=3))
    with pytest.raises(ValueError, match="multiple of 16"):
        guider.sample(noise[:8], empty["samples"][:8], sampler, sigmas, seed=7)


def test_decoded_views_are_in_camera_order(host, prepared):
    """View i of the LATENT decodes to image i: compose/split keep that order."""
    _, vae, _ = host["loaded"]
    views = vae.decode(sample(host, prepared[0], steps=1))
    assert views.shape == (16, 256, 256, 3)
    (grid,) = run(host, "SyncDreamerComposeViews", views=views, layout="grid").args
    (strip,) = run(host, "SyncDreamerComposeViews", views=views, layout="strip").args
    assert torch.equal(grid[0, 256:512, 512:768], views[6]) and torch.equal(strip[0, :, 256 * 9:256 * 10], views[9])
    (back,) = run(host, "SyncDreamerSplitViews", image=strip, layout="auto").args
    assert torch.equal(back, views)


# ---------------------------------------------------------------- views

def test_view_nodes_validate_shapes(host):
    with pytest.raises(ValueError, match="^SyncDreamer Split Views: .*width = 16 x height"):
        run(host, "SyncDreamerSplitViews", image=torch.zeros(1, 10, 100, 3), layout="strip")
    # a photo is not SyncDreamer's views, whatever layout is asked for
    expected = r"expects SyncDreamer's views \(a 1x16 strip or a 4x4 grid of square views, 256 px each"
    for layout in ("auto", "grid", "strip"):
        with pytest.raises(ValueError, match=f"^SyncDreamer Split Views: {expected}.*got an image of 150x150 pixels"):
            run(host, "SyncDreamerSplitViews", image=torch.rand(1, 150, 150, 3), layout=layout)
    with pytest.raises(ValueError, match="^SyncDreamer Compose Views: expects 16 views per object .*got 1 image.s. of "
                                         "150x150 pixels"):
        run(host, "SyncDreamerComposeViews", views=torch.rand(1, 150, 150, 3), layout="grid")
    numbered = torch.arange(32.).view(32, 1, 1, 1).expand(32, 2, 2, 3) / 32
    (picked,) = run(host, "SyncDreamerSelectViews", views=numbered, indices="0-1,15").args
    assert (picked[:, 0, 0, 0] * 32).round().tolist() == [0, 1, 15, 16, 17, 31]
    with pytest.raises(ValueError, match="candidate 2 does not exist"):
        run(host, "SyncDreamerPickCandidate", views=torch.zeros(32, 4, 4, 3), candidate=2)


def test_a_huge_view_range_is_refused_at_once_with_a_short_message(host):
    started = time.perf_counter()
    with pytest.raises(ValueError) as info:
        run(host, "SyncDreamerSelectViews", views=torch.zeros(16, 2, 2, 3), indices="0-100000000," + "99," * 1000)
    assert time.perf_counter() - started < 1.0
    assert len(str(info.value)) < 300 and "0..15" in str(info.value)


# ---------------------------------------------------------------- meshes

@pytest.fixture(scope="module")
def textured(host):
    return run(host, "SyncDreamerReconstruct", views=chicken_views(), method="fast", resolution=64,
               texture="512", max_faces=8000)[0]


def test_reconstruct_outputs_the_hosts_mesh_with_texture_and_one_uv_per_vertex(host, textured):
    assert isinstance(textured, comfy_stubs.MESH)
    V = textured.vertices.shape[1]
    assert textured.faces.shape[0] == 1 and textured.faces.shape[2] == 3 and textured.faces.shape[1] <= 8000
    assert textured.uvs.shape == (1, V, 2) and textured.texture.shape == (1, 512, 512, 3)
    assert 0 <= float(textured.uvs.min()) and float(textured.uvs.max()) <= 1
    extent = textured.vertices[0].max(0).values - textured.vertices[0].min(0).values
    assert extent[1] > 0.4  # y up: the chicken stands along y


def test_vertex_colour_meshes_carry_linear_colours(host):
    from syncdreamer_core.colorspace import srgb_to_linear

    mesh = run(host, "SyncDreamerReconstruct", views=chicken_views(), method="fast", resolution=64, texture="none",
               max_faces=0)[0]
    assert mesh.texture is None and mesh.vertex_colors.shape == (1, mesh.vertices.shape[1], 3)
    saved = host["nodes"]["SyncDreamerSaveMesh"]
    result = saved.execute(mesh=mesh, filename_prefix="mesh/vc", format="ply", up_axis="y")
    import trimesh

    ply = trimesh.load(host["tmp"] / "output" / result[0], process=False)
    srgb = np.asarray(ply.visual.vertex_colors)[:, :3] / 255.0
    assert np.allclose(srgb_to_linear(srgb), mesh.vertex_colors[0].numpy(), atol=0.01)


def test_on_hosts_without_a_textured_mesh_type_the_packs_own_value_carries_every_field(host, monkeypatch):
    host_module = sys.modules["ComfyUI_SyncDreamer.nodes.host"]
    monkeypatch.setattr(host_module, "host_mesh_class", lambda: (None, ()))
    mesh = run(host, "SyncDreamerReconstruct", views=chicken_views(), method="fast", resolution=48, texture="none",
               max_faces=2000)[0]
    assert type(mesh).__name__ == "SyncDreamerMeshValue"
    assert mesh.vertices.shape[0] == 1 and mesh.vertex_colors is not None and mesh.uvs is None
    for name in host_module.MESH_FIELDS:  # what newer core mesh nodes read directly
        assert hasattr(mesh, name), name
    assert mesh.normals.shape == mesh.vertices.shape and mesh.unlit is False and mesh.occlusion_in_mr is False


class NewestMesh:
    """Current ComfyUI's MESH constructor (2026): normals, tangents and material maps too."""

    def __init__(self, vertices, faces, uvs=None, vertex_colors=None, texture=None, metallic_roughness=None,
                 vertex_counts=None, face_counts=None, unlit=False, normals=None, tangents=None, normal_map=None,
                 occlusion_in_mr=False, material=None, emissive=None):
        self.__dict__.update({k: v for k, v in locals().items() if k != "self"})


@pytest.mark.parametrize("mesh_class", [NewestMesh, comfy_stubs.MESH])
def test_the_hosts_mesh_gets_every_field_its_class_accepts(host, monkeypatch, mesh_class):
    import inspect

    host_module = sys.modules["ComfyUI_SyncDreamer.nodes.host"]
    monkeypatch.setattr(host_module, "host_mesh_class",
                        lambda: (mesh_class, tuple(inspect.signature(mesh_class).parameters)))
    mesh = run(host, "SyncDreamerReconstruct", views=chicken_views(), method="fast", resolution=48, texture="512",
               max_faces=2000)[0]
    assert isinstance(mesh, mesh_class) and mesh.texture.shape == (1, 512, 512, 3)
    for name in host_module.MESH_FIELDS:
        assert hasattr(mesh, name), name
    if mesh_class is NewestMesh:  # the normals the pack computes, y up like the vertices
        normals = mesh.normals[0]
        assert normals.shape == mesh.vertices[0].shape and torch.allclose(normals.norm(dim=1), torch.ones(1), atol=1e-3)
    else:
        assert mesh.normals is None


def test_saved_glb_embeds_the_workflow_that_made_it(host, textured, monkeypatch):
    import json
    import types

    import pygltflib

    saver = host["nodes"]["SyncDreamerSaveMesh"]
    workflow = {"nodes": [{"id": 1, "type": "SyncDreamerReconstruct"}], "links": []}
    monkeypatch.setattr(saver, "hidden", types.SimpleNamespace(prompt={"1": {"class_type": "X"}},
                                                               extra_pnginfo={"workflow": workflow}), raising=False)
    result = saver.execute(mesh=textured, filename_prefix="mesh/with_workflow", format="glb", up_axis="y")
    extras = pygltflib.GLTF2().load(str(host["tmp"] / "output" / result[0])).asset.extras
    assert json.loads(extras["workflow"]) == workflow and json.loads(extras["prompt"]) == {"1": {"class_type": "X"}}


@pytest.mark.parametrize("fmt,files", [("glb", {".glb"}), ("obj", {".obj", ".mtl", ".png"}), ("ply", {".ply"})])
def test_save_mesh_writes_every_format(host, textured, fmt, files):
    result = host["nodes"]["SyncDreamerSaveMesh"].execute(mesh=textured, filename_prefix=f"mesh/t_{fmt}", format=fmt,
                                                          up_axis="y")
    path = host["tmp"] / "output" / result[0]
    assert path.is_file() and path.stat().st_size > 1000 and result.ui["3d"][0]["filename"] == path.name
    written = {p.suffix for p in path.parent.iterdir() if p.name.startswith(f"t_{fmt}")}
    assert files <= written


def test_save_mesh_numbers_files_and_never_escapes_the_output_folder(host, textured):
    first = host["nodes"]["SyncDreamerSaveMesh"].execute(mesh=textured, filename_prefix="mesh/count", format="ply")[0]
    second = host["nodes"]["SyncDreamerSaveMesh"].execute(mesh=textured, filename_prefix="mesh/count", format="ply")[0]
    assert first != second and first.endswith("_00001_.ply") and second.endswith("_00002_.ply")
    with pytest.raises(Exception, match="outside the output folder"):
        host["nodes"]["SyncDreamerSaveMesh"].execute(mesh=textured, filename_prefix="../../escaped", format="ply")
    assert not (host["tmp"].parent / "escaped_00001_.ply").exists()


def test_an_empty_mesh_is_refused_not_saved(host):
    empty = comfy_stubs.MESH(torch.zeros(1, 0, 3), torch.zeros(1, 0, 3, dtype=torch.int64))
    with pytest.raises(ValueError, match="empty"):
        host["nodes"]["SyncDreamerSaveMesh"].execute(mesh=empty, filename_prefix="mesh/empty", format="glb")
    assert not list((host["tmp"] / "output").rglob("empty*"))


def test_reconstruct_refuses_bad_texture_sizes_face_budgets_and_view_counts(host):
    views = chicken_views()
    with pytest.raises(ValueError, match="texture must be one of"):
        run(host, "SyncDreamerReconstruct", views=views, texture="1000")
    with pytest.raises(ValueError, match="max_faces must be 0"):
        run(host, "SyncDreamerReconstruct", views=views, max_faces=10)
    with pytest.raises(ValueError, match="exactly 16 images"):
        run(host, "SyncDreamerReconstruct", views=views[:8])
    nan_view = views.clone()
    nan_view[3, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        run(host, "SyncDreamerReconstruct", views=nan_view)


def test_fast_reconstruction_reports_progress_and_stops_on_cancel(host):
    mm = host["mm"]
    comfy_stubs.ProgressBar.updates.clear()
    run(host, "SyncDreamerReconstruct", views=chicken_views(), method="fast", resolution=160, texture="none",
        max_faces=2000)
    assert len(comfy_stubs.ProgressBar.updates) >= 16
    start = mm.state["checks"]
    mm.state.update(interrupt_after=start + 1)
    started = time.perf_counter()
    try:
        with pytest.raises(comfy_stubs.Interrupted):
            run(host, "SyncDreamerReconstruct", views=chicken_views(), method="fast", resolution=320, texture="none")
    finally:
        mm.state["interrupt_after"] = None
    assert time.perf_counter() - started < 5.0  # carving stopped after a chunk, not after 60 s


def test_quality_reconstruction_shows_progress_and_can_be_interrupted(host):
    comfy_stubs.ProgressBar.updates.clear()
    mesh = run(host, "SyncDreamerReconstruct", views=chicken_views(), method="quality", resolution=64,
               quality_steps=3, quality_resolution=32, texture="none", max_faces=2000)[0]
    assert mesh.faces.shape[1] > 0 and mesh.vertex_colors is not None
    assert [u[:2] for u in comfy_stubs.ProgressBar.updates[:3]] == [(1, 3), (2, 3), (3, 3)]
    start = host["mm"].state["checks"]
    host["mm"].state.update(interrupt_after=start + 1)
    try:
        with pytest.raises(comfy_stubs.Interrupted):
            run(host, "SyncDreamerReconstruct", views=chicken_views(), method="quality", resolution=64,
                quality_steps=50, quality_resolution=32)
    finally:
        host["mm"].state["interrupt_after"] = None


def test_turntable_renders_the_object_in_every_frame_from_different_sides(host, textured):
    (frames,) = run(host, "SyncDreamerTurntable", mesh=textured, frames=6, elevation=20.0, resolution=96, light=0.3).args
    assert frames.shape == (6, 96, 96, 3)
    covered = (frames < 0.95).any(-1).float().mean((1, 2))
    assert (covered > 0.05).all()
    assert all((frames[i] - frames[i + 1]).abs().mean() > 0.005 for i in range(5))


def test_rank_candidates_puts_the_consistent_set_first(host):
    views = chicken_views()
    broken = views.clone()
    broken[[3, 11]] = broken[[11, 3]]
    best, ranked, index, scores = run(host, "SyncDreamerRankCandidates", views=torch.cat([broken, views])).args
    assert index == 1 and torch.equal(best, views) and torch.equal(ranked[:16], views)
    assert scores.splitlines()[0].startswith("candidate 1")


# ---------------------------------------------------------------- elevation

def test_elevation_node(host):
    assert run(host, "SyncDreamerElevation", degrees=12.5)[0] == 12.5
    with pytest.raises(ValueError, match="finite"):
        run(host, "SyncDreamerElevation", degrees=float("nan"))


def test_estimate_elevation_node_recovers_view_zero(host):
    """View 0 of a set is itself seen from azimuth 0 at elevation 30: used as the input."""
    from syncdreamer_core.preprocess import prepare_input

    views = chicken_views()
    prepared = prepare_input((views[0].numpy() * 255).round().astype(np.uint8), crop_size=200)
    image, mask = torch.from_numpy(prepared.image)[None], torch.from_numpy(prepared.mask)[None]
    node = host["nodes"]["SyncDreamerEstimateElevation"]
    elevation, preview, confidence = node.execute(image=image, object_mask=mask, views=views, min_confidence=0.0)
    assert abs(elevation - 30.0) <= 5.0 and preview.shape == (1, 256, 256, 3) and 0 <= confidence <= 1
    kept = node.execute(image=image, object_mask=mask, views=views, first_guess=12.0, min_confidence=1.0)
    assert kept[0] == 12.0 and kept[2] < 1.0  # not confident enough: the first guess stands
    with pytest.raises(ValueError, match="16 views"):
        node.execute(image=image, object_mask=mask, views=views[:4])
    with pytest.raises(ValueError, match="one input at a time"):
        node.execute(image=image.expand(2, -1, -1, -1), object_mask=mask.expand(2, -1, -1), views=views)
    with pytest.raises(ValueError, match="looks inverted"):
        node.execute(image=image, object_mask=1 - mask, views=views)
    with pytest.raises(ValueError, match="same size"):
        node.execute(image=image, object_mask=mask[:, :128, :128], views=views)


def test_a_flat_mesh_saves_as_glb_with_a_word_and_is_refused_as_stl(host):
    # a planar mesh another node might hand over (ComfyUI's MESH is y up: zero height)
    vertices = torch.tensor([[[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [1.0, 0.0, 1.0], [0.0, 0.0, 1.0]]])
    flat = comfy_stubs.MESH(vertices, torch.tensor([[[0, 1, 2], [0, 2, 3]]]))
    saver = host["nodes"]["SyncDreamerSaveMesh"]
    saved = saver.execute(mesh=flat, filename_prefix="mesh/flat", format="glb")
    assert (host["tmp"] / "output" / saved[0]).is_file()
    assert "saved; not printable as it is: it has no height to scale: it measures 1 x 0 x 1" in saved.ui["text"][0]
    with pytest.raises(ValueError, match=r"SyncDreamer Save Mesh: flat_00002_.stl has no height to scale: it measures "
                                         r"1 x 0 x 1 \(w x h x d, y up\)"):
        saver.execute(mesh=flat, filename_prefix="mesh/flat", format="stl")
    assert not any(p.suffix == ".stl" for p in (host["tmp"] / "output" / "mesh").iterdir())


@pytest.mark.parametrize("fmt", ["stl", "3mf"])
def test_a_print_file_comes_with_a_glb_for_preview_3d_and_the_report_says_where_each_went(host, textured, fmt):
    import trimesh

    result = host["nodes"]["SyncDreamerSaveMesh"].execute(mesh=textured, filename_prefix=f"mesh/p_{fmt}", format=fmt)
    files = [entry["filename"] for entry in result.ui["3d"]]
    assert files == [f"p_{fmt}_00001_.{fmt}", f"p_{fmt}_00001_preview.glb"]
    assert result[0] == f"mesh/p_{fmt}_00001_preview.glb"  # model_file: Preview 3D shows the GLB
    glb = trimesh.load(str(host["tmp"] / "output" / result[0]), force="mesh")
    assert glb.visual.kind == "texture" and glb.extents[1] < 2  # in colour, y up, in the viewer's units
    assert result.ui["text"][-1] == (f"saved output/mesh/p_{fmt}_00001_.{fmt}; Preview 3D shows "
                                     f"output/mesh/p_{fmt}_00001_preview.glb")
