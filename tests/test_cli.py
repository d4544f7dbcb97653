"""The headless command line."""

from __future__ import annotations

import json

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file

from syncdreamer_core.cli import main
from syncdreamer_core.files import EXAMPLES


def test_generate_without_a_checkpoint_says_what_to_get_and_where(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("SYNCDREAMER_CHECKPOINT", raising=False)
    monkeypatch.setenv("COMFYUI_ROOT", str(tmp_path / "ComfyUI"))
    code = main(["generate", "--input", str(EXAMPLES / "teapot.png"), "--output", str(tmp_path / "out"),
                 "--elevation", "0"])
    err = capsys.readouterr().err
    assert code == 2
    assert "syncdreamer-pretrain.ckpt" in err
    assert str(tmp_path / "ComfyUI" / "models" / "syncdreamer") in err


def test_generate_writes_strips_and_grids(tmp_path, tiny_checkpoint, capsys):
    ckpt = tmp_path / "tiny.safetensors"
    save_file(tiny_checkpoint, str(ckpt))
    code = main(["generate", "--ckpt", str(ckpt), "--input", str(EXAMPLES / "teapot.png"), "--output",
                 str(tmp_path / "out"), "--elevation", "0", "--crop-size", "180", "--steps", "1",
                 "--num-heads", "2"])
    assert code == 0
    strip = np.asarray(Image.open(tmp_path / "out" / "0.png"))
    grid = np.asarray(Image.open(tmp_path / "out" / "0-grid.png"))
    assert strip.shape == (256, 4096, 3) and grid.shape == (1024, 1024, 3)
    assert np.array_equal(strip[:, 256:512], grid[:256, 256:512])  # view 1 in both layouts
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["command"] == "generate"


def test_bad_input_is_reported_not_raised(tmp_path, tiny_checkpoint, capsys):
    ckpt = tmp_path / "tiny.safetensors"
    save_file(tiny_checkpoint, str(ckpt))
    noisy = tmp_path / "noisy.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(noisy)
    code = main(["generate", "--ckpt", str(ckpt), "--input", str(noisy), "--output", str(tmp_path / "o"),
                 "--elevation", "30", "--steps", "1"])
    assert code == 2
    assert "background" in capsys.readouterr().err


def test_convert_subcommand(tmp_path, tiny_checkpoint):
    torch.save({"state_dict": tiny_checkpoint}, tmp_path / "m.ckpt")
    assert main(["convert", str(tmp_path / "m.ckpt"), "--num-heads", "2"]) == 0
    assert (tmp_path / "m.safetensors").stat().st_size > 0
