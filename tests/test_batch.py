"""Batch image-to-3D on Ray Data (a local Ray, started once for this module): every good
item gets its mesh and record, its latents are the single-object command line's, a bad
item is reported and stops nothing, a rerun does no work, a killed sampler actor loses
nothing, --retry-failed redoes only the failures."""

from __future__ import annotations

import json
import os
import signal
import time

import numpy as np
import pytest
import torch
from helpers import ROOT, fast_tiny_config
from PIL import Image
from safetensors.torch import load_file, save_file

from syncdreamer_core.batch.engine import EngineOptions, run_batch
from syncdreamer_core.batch.items import BatchItem, BatchSettings, expand_inputs, item_key
from syncdreamer_core.files import EXAMPLES
from syncdreamer_core.weights.official_layout import paint_square_decoder

ray = pytest.importorskip("ray", reason="batch generation needs Ray: pip install -r requirements-batch.txt")


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray for the module: small object store, no dashboard."""
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=200 * 2**20, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}})
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def square_checkpoint(tmp_path_factory):
    """A tiny random network (attention only at the coarsest level, so a step takes a
    second here) with a VAE that draws a dark square on white: the views are untrained,
    but there is an object to rank, carve and bake."""
    from syncdreamer_core.weights.official_layout import random_checkpoint

    path = tmp_path_factory.mktemp("ckpt") / "tiny-square.safetensors"
    save_file(paint_square_decoder(random_checkpoint(fast_tiny_config(), seed=3)), str(path))
    return path


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Four usable images (RGBA, a JPEG on white, a mirrored copy, a sketch) and one broken
    file, named by a CSV list with per-item settings."""
    folder = tmp_path_factory.mktemp("inputs")
    teapot = Image.open(EXAMPLES / "teapot.png")
    teapot.save(folder / "teapot.png")
    teapot.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(folder / "mirrored.png")
    white = Image.new("RGB", teapot.size, "white")
    white.paste(teapot, mask=teapot.getchannel("A"))
    white.save(folder / "on_white.jpg", quality=95)
    Image.open(EXAMPLES / "sketch_mug.png").save(folder / "mug.png")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    (folder / "list.csv").write_text("image,elevation,crop_size,seed\nteapot.png,0,180,11\nmirrored.png,,,\n"
                                     "on_white.jpg,10,,\nmug.png,5,200,\nbroken.png,0,,\n")
    return folder


def settings_for(checkpoint, **changes) -> BatchSettings:
    base = dict(checkpoint=str(checkpoint), elevation=20.0, steps=1, candidates=2, resolution=48, max_faces=3000,
                texture=256, save_latents=True, batch_view_num=8, turntable=3)
    return BatchSettings(**{**base, **changes})


def records(output) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in output.glob("*/record.json")}


def test_a_batch_meshes_every_good_item_reports_the_bad_one_a_rerun_does_nothing_and_retries_the_failure(
        local_ray, square_checkpoint, inputs, tmp_path):
    from syncdreamer_core.cli import main

    items = expand_inputs([str(inputs / "list.csv")])
    assert [i.elevation for i in items] == [0.0, None, 10.0, 5.0, 0.0] and items[0].seed == 11
    output = tmp_path / "out"
    settings = settings_for(square_checkpoint)
    # The sampler actor computes with this process's thread count, so that the command line
    # below gives the same bits (float sums depend on how the work is split between threads).
    same_threads = EngineOptions(progress=False, sampler_threads=torch.get_num_threads())
    report = run_batch(items, settings, output, same_threads)
    assert report.count("done") == 4 and report.count("failed") == 1, report.summary()
    assert report.exit_code() == 1
    failed = next(line for line in report.lines if line["status"] == "failed")
    assert failed["input"].endswith("broken.png") and "not a readable image" in failed["message"]
    done = records(output)
    assert len(done) == 4
    for key, record in done.items():
        folder = output / key
        for name in ("model.glb", "views.png", "views-grid.png", "input.png", "latents.safetensors", "turntable.webp"):
            assert (folder / name).stat().st_size > 0, (key, name)
        turntable = Image.open(folder / "turntable.webp")
        assert turntable.n_frames == 3 and np.asarray(turntable.convert("RGB")).std() > 1
        assert record["chosen_candidate"] in (0, 1) and len(record["candidate_scores"]) == 2
        assert set(record["times"]) >= {"prepare", "sample", "finish"} and record["versions"]["torch"]
        assert len(record["input_sha256"]) == 64 and record["settings"]["steps"] == 1
        assert not list(folder.glob(".*partial*"))
    teapot = next(r for r in done.values() if r["input"].endswith("teapot.png"))
    assert teapot["seed"] == 11 and teapot["elevation_used"] == 0.0 and teapot["settings"]["crop_size"] == 180
    lines = [json.loads(line) for line in (output / "report.jsonl").read_text().splitlines()]
    assert sorted(line["status"] for line in lines) == ["done"] * 4 + ["failed"]

    # The same item and seed through the single-object command line: the same latents, bit for bit.
    cli_out = tmp_path / "cli"
    assert main(["generate", "--ckpt", str(square_checkpoint), "--input", str(inputs / "teapot.png"), "--output",
                 str(cli_out), "--elevation", "0", "--crop-size", "180", "--seed", "11", "--steps", "1",
                 "--sample-num", "2", "--save-latents"]) == 0
    batch_latents = load_file(str(output / teapot["key"] / "latents.safetensors"))["latents"]
    assert torch.equal(batch_latents, load_file(str(cli_out / "latents.safetensors"))["latents"])

    # A rerun finds everything finished: nothing is sampled, nothing rewritten.
    stamps = {key: (output / key / "record.json").stat().st_mtime_ns for key in done}
    started = time.perf_counter()
    again = run_batch(items, settings, output, EngineOptions(progress=False))
    assert again.count("skipped") == 4 and again.count("failed-before") == 1 and again.count("done") == 0
    # an item still failed from before keeps the exit code at 1, with the way out
    assert again.exit_code() == 1
    assert again.failure_line().startswith("1 item(s) failed (0 in this run, 1 in earlier runs and not retried)")
    assert "--retry-failed" in again.failure_line()
    assert time.perf_counter() - started < 5
    assert stamps == {key: (output / key / "record.json").stat().st_mtime_ns for key in done}

    # --retry-failed: the broken file is replaced by a good one; only it is done now.
    Image.open(EXAMPLES / "teapot.png").transpose(Image.Transpose.FLIP_TOP_BOTTOM).save(inputs / "broken.png")
    retried = run_batch(items, settings, output, EngineOptions(progress=False), retry_failed=True)
    assert sorted(line["status"] for line in retried.lines) == ["done"] + ["skipped"] * 4, retried.summary()
    assert retried.exit_code() == 0 and retried.failure_line() is None
    assert next(line for line in retried.lines if line["status"] == "done")["input"].endswith("broken.png")
    assert len(records(output)) == 5


def test_a_killed_sampler_actor_loses_no_item_and_does_none_twice(local_ray, square_checkpoint, inputs, tmp_path):
    names = ("teapot.png", "mirrored.png", "mug.png")
    items = [BatchItem(str(inputs / name), elevation=0.0) for name in names]
    # Sampling (two candidates) outlasts meshing (no texture, no turntable), so when the first
    # item is reported the actor still has items to sample.
    settings = settings_for(square_checkpoint, candidates=2, turntable=0, texture=0, save_latents=False)
    output = tmp_path / "out"
    killed = []

    def kill_the_sampler(line):
        if not killed:
            pid = int(line["sampled_by"].rsplit(":", 1)[1])
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pytest.fail("the sampler actor had already finished every item: no fault was injected")
            killed.append(pid)

    report = run_batch(items, settings, output, EngineOptions(progress=False), on_item=kill_the_sampler)
    assert report.count("done") == len(items) and len(report.lines) == len(items), report.summary()
    done = records(output)
    assert sorted(r["input"] for r in done.values()) == sorted(i.path for i in items)
    samplers = {r["sampled_by"] for r in done.values()}
    assert any(not s.endswith(f":{killed[0]}") for s in samplers), "no item was sampled after the kill"


def test_keys_follow_the_input_and_every_setting_that_changes_the_outputs(square_checkpoint, inputs):
    settings = settings_for(square_checkpoint)
    identity = settings.checkpoint_identity()
    item = BatchItem(str(inputs / "teapot.png"))
    key = item_key(item, settings, identity)
    assert key.startswith("teapot-") and key == item_key(BatchItem(str(inputs / "teapot.png")), settings, identity)
    for change in ({"texture": 512}, {"steps": 3}, {"seed": 1}, {"elevation": "auto"}, {"recon": "quality"}):
        assert item_key(item, settings_for(square_checkpoint, **change), identity) != key, change
    assert item_key(item, settings_for(square_checkpoint, batch_view_num=4), identity) == key
    for change in ({"formats": ("glb", "stl")}, {"print_size_mm": 80.0}, {"flat_base": True}, {"size_of": "longest side"}):
        assert item_key(item, settings_for(square_checkpoint, **change), identity) != key, change
    # print settings at their defaults leave the key as batches made before they existed
    assert not {"formats", "print_size_mm", "size_of", "flat_base"} & set(settings.for_item(item))
    assert item_key(BatchItem(str(inputs / "mirrored.png")), settings, identity) != key
    assert item_key(BatchItem(str(inputs / "teapot.png"), seed=5), settings, identity) != key


def test_the_batch_writes_every_format_asked_for_and_records_what_a_slicer_will_see(
        local_ray, square_checkpoint, inputs, tmp_path):
    import trimesh

    from syncdreamer_core.cli import main

    output = tmp_path / "out"
    code = main(["batch", str(inputs / "teapot.png"), "--ckpt", str(square_checkpoint), "--output", str(output),
                 "--elevation", "20", "--steps", "1", "--resolution", "48", "--faces", "3000", "--texture", "512",
                 "--format", "glb", "stl", "3mf", "obj", "--size-mm", "80", "--flat-base", "--no-progress"])
    assert code == 0
    (record,) = records(output).values()
    folder = output / record["key"]
    assert set(record["outputs"]) >= {"mesh", "mesh_stl", "mesh_3mf", "mesh_obj"}
    for name in ("model.glb", "model.stl", "model.3mf", "model.obj", "model.mtl", "model.png"):
        assert (folder / name).stat().st_size > 0, name
    assert not [p.name for p in folder.iterdir() if p.name.startswith(".")]
    printed = record["print"]
    assert printed["watertight"] and printed["faces"] > 0 and printed["volume_ml"] > 0
    assert printed["size_mm"][1] == pytest.approx(80.0, abs=0.01)
    stl = trimesh.load(folder / "model.stl", process=True)
    assert stl.is_volume and stl.extents[2] == pytest.approx(80.0, abs=0.01)  # STL stands z up
    assert abs(stl.volume) / 1000 == pytest.approx(printed["volume_ml"], rel=1e-3)
    assert record["settings"]["formats"] == ["glb", "stl", "3mf", "obj"] and record["settings"]["flat_base"]
    line = json.loads((output / "report.jsonl").read_text().splitlines()[0])
    assert line["print"]["watertight"] is True


def test_inputs_are_files_folders_patterns_and_lists(inputs, tmp_path):
    from syncdreamer_core.batch.items import BatchInputError

    found = expand_inputs([str(inputs), str(inputs / "*.png"), str(inputs / "teapot.png")])
    assert [os.path.basename(i.path) for i in found] == ["broken.png", "mirrored.png", "mug.png", "on_white.jpg",
                                                         "teapot.png"]
    with pytest.raises(BatchInputError, match="does not exist"):
        expand_inputs([str(tmp_path / "nothing.png")])
    listed = tmp_path / "list.jsonl"
    listed.write_text(f'{{"image": "{inputs / "teapot.png"}", "elevation": 0, "seed": 3}}\n"later.png"\n')
    first, later = expand_inputs([str(listed)])
    assert (first.elevation, first.seed, first.problem) == (0.0, 3, None)
    assert later.path == str(tmp_path / "later.png") and "does not exist" in later.problem
    # A bad value fails its row (named by file, line and column); the other rows go on.
    (tmp_path / "teapot.png").write_bytes((inputs / "teapot.png").read_bytes())
    bad = tmp_path / "bad.csv"
    bad.write_text("image,elevation,seed\nteapot.png,high,\nteapot.png,10,-3\nteapot.png,12,7\n")
    high, negative, good = expand_inputs([str(bad)])
    assert f"{bad} line 2, column elevation: must be a number, got 'high'" in high.problem
    assert "line 3, column seed: must be in 0.." in negative.problem
    assert (good.problem, good.elevation, good.seed) == (None, 12.0, 7)
    typed = tmp_path / "typed.jsonl"
    typed.write_text('{"image": "teapot.png", "elevation": true}\n{"image": "teapot.png", "elevation": "20"}\n'
                     '{"image": "teapot.png", "crop_size": 180.5}\n{"image": "teapot.png", "elevation": 20, "seed": 4}\n')
    boolean, text, fraction, number = expand_inputs([str(typed)])
    assert f"{typed} line 1, column elevation: must be a number, got true (bool)" in boolean.problem
    assert boolean.elevation is None  # never taken as 1.0 degree
    assert "line 2, column elevation: must be a number, got '20' (str)" in text.problem
    assert "line 3, column crop_size: must be an integer" in fraction.problem
    assert (number.problem, number.elevation, number.seed) == (None, 20.0, 4)
    binary = tmp_path / "photos.csv"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe binary")
    with pytest.raises(BatchInputError, match=f"the list {binary} is not a UTF-8 text file"):
        expand_inputs([str(binary)])
    (tmp_path / "nocolumn.csv").write_text("picture\nx.png\n")
    with pytest.raises(BatchInputError, match="must name the columns"):
        expand_inputs([str(tmp_path / "nocolumn.csv")])


def test_ctrl_c_stops_within_seconds_and_the_rerun_continues(local_ray, square_checkpoint, inputs, tmp_path):
    """The command in its own process (its own embedded Ray): SIGINT once the first item is
    finished; it exits 130 within seconds, and a rerun does only what was left."""
    import subprocess
    import sys

    output = tmp_path / "out"
    names = ("teapot.png", "mirrored.png", "mug.png")
    command = [sys.executable, "-m", "syncdreamer_core", "batch", *(str(inputs / n) for n in names), "--output",
               str(output), "--ckpt", str(square_checkpoint), "--elevation", "0", "--steps", "1", "--resolution", "48",
               "--texture", "0", "--faces", "2000", "--no-progress", "--object-store-mb", "100"]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not list(output.glob("*/record.json")) and process.poll() is None:
        time.sleep(0.2)
    assert process.poll() is None, process.communicate()[0][-3000:]
    process.send_signal(signal.SIGINT)
    stopped = time.monotonic()
    out, _ = process.communicate(timeout=60)
    took = time.monotonic() - stopped
    print(f"stopped {took:.1f} s after Ctrl-C")
    assert process.returncode == 130 and "INTERRUPTED" in out, out[-3000:]
    # the console holds the pack's lines, not Ray's (its logs stay in its files)
    for noise in ("ERROR", "core_worker", "uthentication", "streaming_executor", "Traceback"):
        assert noise not in out, out[-3000:]
    assert took < 15
    finished = len(records(output))
    assert 1 <= finished < len(names)
    reported = [json.loads(line) for line in (output / "report.jsonl").read_text().splitlines()]
    assert [line["status"] for line in reported] == ["done"] * finished
    items = [BatchItem(str(inputs / n), elevation=0.0) for n in names]
    settings = BatchSettings(checkpoint=str(square_checkpoint.resolve()), elevation=0.0, steps=1, resolution=48,
                             texture=0, max_faces=2000)
    rerun = run_batch(items, settings, output, EngineOptions(progress=False))
    assert rerun.count("skipped") == finished and rerun.count("done") == len(names) - finished, rerun.summary()


def test_ctrl_c_is_remembered_where_a_library_swallows_the_exception():
    """SIGINT raises KeyboardInterrupt as Python's own handler does, and is kept for the batch
    loop even where the exception dies inside a library (as it once did inside Ray)."""
    from syncdreamer_core.batch.interrupt import CtrlC

    before = signal.getsignal(signal.SIGINT)
    with CtrlC() as ctrl_c:
        assert not ctrl_c.pressed
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)  # the handler runs here, in the main thread
        assert ctrl_c.pressed
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)
        except KeyboardInterrupt:
            pass  # what a finaliser or callback does with it
        assert ctrl_c.pressed
    assert signal.getsignal(signal.SIGINT) is before


def test_sampler_actors_never_hold_every_cpu(monkeypatch):
    """Sampler actors that reserved all CPUs would leave the meshing stage unscheduled forever."""
    from syncdreamer_core.batch.engine import PREPARE_CPUS, sampler_cpus

    for cpus, actors in ((2, 1), (2, 2), (4, 3), (64, 8)):
        monkeypatch.setattr(ray, "cluster_resources", lambda cpus=cpus: {"CPU": float(cpus)})
        reserved = sampler_cpus(actors, 1.0)
        assert 0 < reserved <= 1 and actors * reserved + 1.0 + PREPARE_CPUS <= cpus, (cpus, actors, reserved)
    assert sampler_cpus(8, 1.0) == 1.0  # enough CPUs: one each
