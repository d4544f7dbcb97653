"""The pack in a real ComfyUI: node registration, API graphs end to end, the shipped
workflows against the live /object_info, the API client, and interruption."""

from __future__ import annotations

import copy
import json
import threading
import time

import pytest
import torch
import trimesh
from PIL import Image
from safetensors.torch import load_file

from comfy_server import ROOT, TINY

from comfy_client import ComfyClient, load_workflow  # noqa: E402

pytestmark = pytest.mark.integration


def run(comfy, workflow: dict, on_event=None) -> dict:
    client = ComfyClient(comfy.server, timeout=900)
    entry = client.wait(client.submit(workflow), on_event)
    return entry


def assert_success(entry):
    status = entry["status"]
    errors = [m[1].get("exception_message") for m in status.get("messages", []) if m[0] == "execution_error"]
    assert status["status_str"] == "success", errors


def sampler_graph(seed=11, steps=3, sampler="ddim", scheduler="ddim_uniform"):
    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": "syncdreamer_teapot.png"}},
        "2": {"class_type": "SyncDreamerCheckpointLoader", "inputs": {"ckpt_name": TINY, "dtype": "fp32"}},
        "3": {"class_type": "SyncDreamerPrepareImage", "inputs": {"image": ["1", 0], "mask": ["1", 1], "crop_size": 180,
                                                                  "mask_is_background": True}},
        "4": {"class_type": "SyncDreamerSampler", "inputs": {
            "syncdreamer_model": ["2", 0], "vae": ["2", 1], "image": ["3", 0], "elevation": 0.0, "seed": seed,
            "steps": steps, "cfg": 2.0, "sampler_name": sampler, "scheduler": scheduler, "eta": 1.0,
            "batch_size": 1, "batch_view_num": 8}},
        "5": {"class_type": "VAEDecode", "inputs": {"samples": ["4", 0], "vae": ["2", 1]}},
        "6": {"class_type": "SaveImage", "inputs": {"images": ["5", 0], "filename_prefix": f"views_{sampler}"}},
        "7": {"class_type": "SaveLatent", "inputs": {"samples": ["4", 0], "filename_prefix": f"latents/{sampler}_{seed}"}},
    }


def test_object_info_lists_every_node_with_its_inputs(comfy):
    import workflow_tools as W

    info = comfy.get("/object_info")
    ours = W.pack_definitions(W.stock_definitions())
    for name, definition in ours.items():
        assert name in info, f"{name} missing from /object_info"
        for section in ("required", "optional"):
            assert set(info[name]["input"].get(section, {})) == set(definition["input"].get(section, {})), name
        assert info[name]["output"] == definition["output"]
        assert info[name]["category"] == "SyncDreamer"
    assert TINY in info["SyncDreamerCheckpointLoader"]["input"]["required"]["ckpt_name"][0]


def test_shipped_workflows_are_valid_for_the_live_server(comfy):
    import workflow_tools as W

    info = comfy.get("/object_info")
    for path in sorted((ROOT / "example_workflows").glob("*.json")):
        ui = json.loads(path.read_text())
        missing = {n["type"] for n in ui["nodes"]} - set(info) - W.FRONTEND_ONLY
        assert not missing, f"{path.name}: {missing}"
        assert W.validate_ui(ui, info) == [], path.name


def test_sampler_graph_runs_and_reproduces_the_reference_ddim(comfy):
    seed, steps = 11, 3
    entry = run(comfy, sampler_graph(seed, steps))
    assert_success(entry)
    images = entry["outputs"]["6"]["images"]
    assert len(images) == 16
    first = ComfyClient(comfy.server).download(images[0], comfy.base / "downloads")
    assert Image.open(first).size == (256, 256)

    latent_file = next((comfy.base / "output" / "latents").glob(f"ddim_{seed}*.latent"))
    latents = load_file(str(latent_file))["latent_tensor"].float()
    assert latents.shape == (16, 4, 32, 32)

    # The same run through syncdreamer_core alone.
    from syncdreamer_core.weights.checkpoint import load_checkpoint
    from syncdreamer_core.constants import VAE_SCALE_FACTOR
    from syncdreamer_core.conditioning import Conditioning
from syncdreamer_core.diffusion.denoiser import SyncDenoiser
    from syncdreamer_core.weights.encoders import clip_image_embedding
    from syncdreamer_core.pipeline import elevation_radians, input_latent_generator, sample_posterior
    from syncdreamer_core.preprocess import prepare_input
    from syncdreamer_core.diffusion.sampling import sample

    loaded = load_checkpoint(comfy.base / "models" / "syncdreamer" / TINY)
    prepared = prepare_input(Image.open(comfy.base / "input" / "syncdreamer_teapot.png"), crop_size=180)
    pixels = torch.from_numpy(prepared.model_input()).permute(2, 0, 1)[None]
    with torch.inference_mode():
        posterior = loaded.vae.encode(pixels).latent_dist
        latent = sample_posterior(posterior.mean, posterior.std, input_latent_generator(seed)) * VAE_SCALE_FACTOR
        cond = Conditioning(clip_image_embedding(loaded.clip, pixels), latent, elevation_radians(0.0, 1))
    reference = sample(SyncDenoiser(loaded.model, 8), cond, steps, 2.0, 1.0,
                       generator=torch.Generator().manual_seed(seed))
    ours = latents * VAE_SCALE_FACTOR
    rel = float((ours - reference.reshape(ours.shape)).norm() / reference.norm())
    assert rel < 1e-3, rel


@pytest.mark.parametrize("sampler,scheduler", [("euler_ancestral", "karras"), ("dpmpp_2m", "normal")])
def test_stock_samplers_drive_the_synchronized_denoiser(comfy, sampler, scheduler):
    entry = run(comfy, sampler_graph(3, 2, sampler, scheduler))
    assert_success(entry)
    assert len(entry["outputs"]["6"]["images"]) == 16


def image_to_3d_for_tiny_checkpoint() -> dict:
    """The shipped image_to_3d API workflow with the test's tiny checkpoint and 2 steps.
    A random network draws noise, which has no object to reconstruct, so the mesh branch
    reads the bundled real SyncDreamer views instead (LoadImage + Split Views)."""
    workflow = copy.deepcopy(load_workflow("image_to_3d"))
    by_type = {node["class_type"]: key for key, node in workflow.items()}
    workflow[by_type["SyncDreamerCheckpointLoader"]]["inputs"]["ckpt_name"] = TINY
    workflow[by_type["SyncDreamerSampler"]]["inputs"]["steps"] = 2
    workflow["900"] = {"class_type": "LoadImage", "inputs": {"image": "chicken_views.png"}}
    workflow["901"] = {"class_type": "SyncDreamerSplitViews", "inputs": {"image": ["900", 0], "layout": "auto"}}
    workflow[by_type["SyncDreamerReconstruct"]]["inputs"]["views"] = ["901", 0]
    return workflow


def test_image_to_3d_workflow_end_to_end(comfy):
    workflow = image_to_3d_for_tiny_checkpoint()
    by_type = {node["class_type"]: key for key, node in workflow.items()}
    events = []
    entry = run(comfy, workflow, lambda kind, data: events.append(kind))
    assert_success(entry)
    assert "progress" in events
    client = ComfyClient(comfy.server)
    strip = client.download(entry["outputs"][by_type["SaveImage"]]["images"][0], comfy.base / "downloads")
    assert Image.open(strip).size == (4096, 256)  # the reference's 1x16 strip
    mesh_entry = entry["outputs"][by_type["SyncDreamerSaveMesh"]]["3d"][0]
    mesh_file = client.download(mesh_entry, comfy.base / "downloads")
    mesh = trimesh.load(mesh_file, force="mesh")
    assert len(mesh.faces) > 1000 and mesh.visual.kind == "vertex"


def test_client_script_runs_a_workflow_and_downloads_its_outputs(comfy, tmp_path):
    from comfy_client import main

    path = tmp_path / "workflow.json"
    path.write_text(json.dumps(image_to_3d_for_tiny_checkpoint()))
    out = tmp_path / "out"
    assert main(["--server", comfy.server, "--workflow", str(path), "--out", str(out),
                 "--image", f"1={ROOT / 'syncdreamer_core' / 'examples' / 'teapot.png'}"]) == 0
    files = {p.suffix for p in out.iterdir()}
    assert {".png", ".glb"} <= files


def test_interrupt_stops_within_a_step_and_the_server_keeps_serving(comfy):
    client = ComfyClient(comfy.server, timeout=600)
    progress_times: list[float] = []
    interrupted_at: list[float] = []

    def on_event(kind, data):
        if kind == "progress":
            progress_times.append(time.monotonic())
            if len(progress_times) == 3 and not interrupted_at:
                interrupted_at.append(time.monotonic())
                threading.Thread(target=client.interrupt).start()

    prompt_id = client.submit(sampler_graph(seed=1, steps=200))
    entry = client.wait(prompt_id, on_event)
    finished = time.monotonic()
    assert interrupted_at, "the run made no progress"
    statuses = [m[0] for m in entry["status"]["messages"]]
    assert "execution_interrupted" in statuses
    step = progress_times[2] - progress_times[1]
    assert finished - interrupted_at[0] < 2 * step + 5, (finished - interrupted_at[0], step)
    assert len(progress_times) < 8
    # still serving
    assert "SyncDreamerSampler" in comfy.get("/object_info/SyncDreamerSampler")
    assert_success(run(comfy, sampler_graph(seed=2, steps=1)))
