"""The headless command line: its outputs, and that every mistake is reported before the
model is loaded."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from helpers import fake_cpu
from PIL import Image
from safetensors.torch import save_file

from syncdreamer_core.cli import main
from syncdreamer_core.files import EXAMPLES


@pytest.fixture
def ckpt(tmp_path, tiny_checkpoint):
    path = tmp_path / "tiny.safetensors"
    save_file(tiny_checkpoint, str(path))
    return path


@pytest.fixture
def no_loading(monkeypatch):
    """Fail the test if the model would be loaded: the checks must come first."""
    import syncdreamer_core.pipeline as pipeline

    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded before the inputs were checked")

    monkeypatch.setattr(pipeline.SyncDreamerPipeline, "from_checkpoint", refuse)


def generate(ckpt, out, *extra):
    return main(["generate", "--ckpt", str(ckpt), "--input", str(EXAMPLES / "teapot.png"), "--output", str(out),
                 "--elevation", "0", "--crop-size", "180", "--steps", "1", "--num-heads", "2", *extra])


@pytest.mark.parametrize("flags,chosen", [
    ({"avx2", "avx512f", "avx512_bf16"}, "bf16"),  # AMD Zen 4
    ({"avx2", "amx_bf16", "amx_tile"}, "bf16"),  # Sapphire Rapids and later Xeons
    ({"avx2", "fma"}, "fp32"),  # bf16 would be emulated
])
def test_dtype_auto_is_chosen_once_before_loading_as_the_loader_nodes_auto(tmp_path, ckpt, monkeypatch, capsys,
                                                                            flags, chosen):
    import syncdreamer_core.pipeline as pipeline

    fake_cpu(monkeypatch, flags)
    asked = []

    def record(cls, path, dtype, *args, **kwargs):
        asked.append(dtype)
        raise ValueError("stopped after the dtype was chosen")

    monkeypatch.setattr(pipeline.SyncDreamerPipeline, "from_checkpoint", classmethod(record))
    assert generate(ckpt, tmp_path / "out", "--device", "cpu", "--dtype", "auto") == 2
    assert asked == [chosen]
    assert f"--dtype auto: {chosen} on cpu" in capsys.readouterr().err


def test_fp32_on_a_cpu_with_bf16_instructions_says_bf16_is_faster(tmp_path, ckpt, monkeypatch, capsys):
    fake_cpu(monkeypatch, {"avx2", "avx512f", "avx512_bf16"})
    assert generate(ckpt, tmp_path / "bf16-cpu", "--device", "cpu") == 0
    assert "--dtype bf16 (or auto) samples 1.7-3x faster" in capsys.readouterr().err
    fake_cpu(monkeypatch, {"avx2", "fma"})
    assert generate(ckpt, tmp_path / "plain-cpu", "--device", "cpu") == 0
    assert "--dtype bf16" not in capsys.readouterr().err


def test_generate_without_a_checkpoint_says_what_to_get_and_where(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("SYNCDREAMER_CHECKPOINT", raising=False)
    monkeypatch.setenv("COMFYUI_ROOT", str(tmp_path / "ComfyUI"))
    code = main(["generate", "--input", str(EXAMPLES / "teapot.png"), "--output", str(tmp_path / "out"),
                 "--elevation", "0"])
    err = capsys.readouterr().err
    assert code == 2 and "syncdreamer-pretrain.ckpt" in err
    assert str(tmp_path / "ComfyUI" / "models" / "syncdreamer") in err


def test_generate_writes_strips_and_grids(tmp_path, ckpt, capsys):
    assert generate(ckpt, tmp_path / "out") == 0
    strip = np.asarray(Image.open(tmp_path / "out" / "0.png"))
    grid = np.asarray(Image.open(tmp_path / "out" / "0-grid.png"))
    assert strip.shape == (256, 4096, 3) and grid.shape == (1024, 1024, 3)
    assert np.array_equal(strip[:, 256:512], grid[:256, 256:512])  # view 1 in both layouts
    out, err = capsys.readouterr()
    assert json.loads(out.strip().splitlines()[-1])["command"] == "generate"
    assert re.search(r"sampling on the CPU: about \d+ s on this CPU \(\d+ steps, ~\d+ s a step in fp32\)", err), err


def test_candidate_k_can_be_regenerated_alone_with_seed_plus_k(tmp_path, ckpt):
    assert generate(ckpt, tmp_path / "batch", "--sample-num", "2", "--seed", "40") == 0
    assert generate(ckpt, tmp_path / "alone", "--seed", "41") == 0
    assert (tmp_path / "batch" / "1.png").read_bytes() == (tmp_path / "alone" / "0.png").read_bytes()


@pytest.mark.parametrize("args,message", [
    (["--input", "nope.png"], "does not exist"),
    (["--input", "."], "is a folder"),
    (["--device", "cuda:7"], "CUDA"),
    (["--device", "gpu0", "--dtype", "auto"], "unknown device 'gpu0'"),
    (["--device", "cuda:7", "--dtype", "auto"], "CUDA"),
    (["--output", "FILE"], "is a file; give a folder"),
])
def test_bad_inputs_and_outputs_are_reported_before_loading(tmp_path, ckpt, no_loading, capsys, args, message):
    (tmp_path / "FILE").write_text("x")
    base = {"--input": str(EXAMPLES / "teapot.png"), "--output": str(tmp_path / "out")}
    for key, value in zip(args[::2], args[1::2], strict=True):
        base[key] = str(tmp_path / value) if value == "FILE" else value
    if torch.cuda.is_available() and "cuda" in base.get("--device", ""):
        pytest.skip("this machine has CUDA")
    argv = ["generate", "--ckpt", str(ckpt), "--elevation", "0"] + [x for kv in base.items() for x in kv]
    assert main(argv) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("flag,value,message", [
    ("--seed", str(2**64), "--seed must be in 0..18446744073709551615"),
    ("--num-heads", "0", "--num-heads must be in 1..64"),
    ("--steps", "0", "--steps must be in 1..1000"),
    ("--crop-size", "2", "--crop-size must be -1 or 16..256"),
    ("--cfg-scale", "nan", "--cfg-scale must be a number"),
    ("--elevation", "120", "--elevation must be a number in -90..90"),
])
def test_bad_numbers_are_argument_errors(tmp_path, ckpt, no_loading, capsys, flag, value, message):
    argv = ["generate", "--ckpt", str(ckpt), "--input", str(EXAMPLES / "teapot.png"), "--output", str(tmp_path / "o"),
            "--elevation", "0", flag, value]
    with pytest.raises(SystemExit):
        main(argv)
    assert message in capsys.readouterr().err


def test_existing_outputs_are_kept_unless_overwrite_is_given(tmp_path, ckpt, no_loading, capsys):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "0.png").write_text("mine")
    assert main(["generate", "--ckpt", str(ckpt), "--input", str(EXAMPLES / "teapot.png"), "--output",
                 str(tmp_path / "out"), "--elevation", "0"]) == 2
    assert "already exists" in capsys.readouterr().err and (tmp_path / "out" / "0.png").read_text() == "mine"


def test_an_input_without_background_is_reported_before_loading(tmp_path, ckpt, no_loading, capsys):
    noisy = tmp_path / "noisy.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(noisy)
    code = main(["generate", "--ckpt", str(ckpt), "--input", str(noisy), "--output", str(tmp_path / "o"),
                 "--elevation", "30"])
    assert code == 2 and "background" in capsys.readouterr().err


def test_the_demo_without_a_checkpoint_says_so_tells_the_wait_and_writes_the_views(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("SYNCDREAMER_CHECKPOINT", raising=False)
    monkeypatch.setenv("COMFYUI_ROOT", str(tmp_path / "ComfyUI"))
    assert main(["demo", "--steps", "1", "--no-mesh", "--device", "cpu", "--output", str(tmp_path / "demo")]) == 0
    out = capsys.readouterr().out
    assert "RANDOMLY INITIALISED" in out and "random weights: noise" in out
    assert out.index("sampling on the CPU: about") < out.index("16 views in")
    assert Image.open(tmp_path / "demo" / "teapot-0.png").size == (4096, 256)
    assert not (tmp_path / "demo" / "chicken.glb").exists()


def test_demo_refuses_zero_steps(capsys):
    with pytest.raises(SystemExit):
        main(["demo", "--steps", "0"])
    assert "--steps must be in 1..1000" in capsys.readouterr().err


def test_convert_subcommand_keeps_its_input(tmp_path, tiny_checkpoint, capsys):
    torch.save({"state_dict": tiny_checkpoint}, tmp_path / "m.ckpt")
    assert main(["convert", str(tmp_path / "m.ckpt"), "--num-heads", "2"]) == 0
    assert (tmp_path / "m.safetensors").stat().st_size > 0
    assert main(["convert", str(tmp_path / "m.safetensors")]) == 0
    assert (tmp_path / "m-fp16.safetensors").is_file()
    assert main(["convert", str(tmp_path / "m.safetensors")]) == 2
    assert "exists" in capsys.readouterr().err
