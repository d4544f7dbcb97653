"""Loading checkpoints safely, the official key layout, refusals and conversion."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
from helpers import fast_tiny_config
from safetensors.torch import save_file

from syncdreamer_core.network.config import SyncDreamerConfig
from syncdreamer_core.weights.checkpoint import (
    CheckpointError,
    convert_checkpoint,
    infer_config,
    load_checkpoint,
    read_state_dict,
    split_checkpoint,
)
from syncdreamer_core.weights.official_layout import official_shapes


def meta_state_dict(shapes: dict) -> dict:
    return {k: torch.empty(s, device="meta") for k, s in shapes.items()}


@pytest.mark.parametrize("with_text_transformer", [False, True])
def test_full_official_layout_maps_without_missing_or_unexpected_keys(with_text_transformer):
    """The released checkpoint's 1.4 B-parameter layout, as meta tensors (no memory)."""
    shapes = official_shapes(with_text_transformer=with_text_transformer)
    loaded = load_checkpoint(meta_state_dict(shapes), device="meta", keep_parts=True)
    assert loaded.config == SyncDreamerConfig.official()
    parts = loaded.parts
    assert not parts.unknown
    # every key is used by exactly one component, or is a known-unused CLIP text weight
    used = len(parts.network) + len(parts.vae) + len(parts.clip_visual)
    assert used + len(parts.ignored) == len(shapes)
    assert all(k.startswith("clip_image_encoder.model.") and ".visual." not in k for k in parts.ignored)
    network = sum(t.numel() for t in loaded.model.parameters())
    assert round(network / 1e6) == 966  # the official configuration's size
    assert sum(p.numel() for p in loaded.vae.parameters()) == 83_653_863  # SD 1.x VAE
    clip_params = sum(p.numel() for p in loaded.clip.parameters())
    assert clip_params == sum(torch.Size(s).numel() for k, s in shapes.items() if ".visual." in k)
    assert loaded.clip.config.num_attention_heads == 16 and loaded.clip.config.num_hidden_layers == 24


def test_network_keys_match_the_fixture_written_by_the_official_code():
    from helpers import fixture_sets
    from safetensors.torch import load_file

    root = fixture_sets()["parity-t"]
    official_keys = set(load_file(str(root / "weights.safetensors")))
    config = infer_config(load_file(str(root / "weights.safetensors")), num_heads=2)
    ours = set(official_shapes(config))
    ours = {k for k in ours if not k.startswith(("first_stage_model.", "clip_image_encoder."))}
    assert ours == official_keys


def test_num_heads_is_an_override_and_defaults_to_the_released_value(tiny_checkpoint):
    network = split_checkpoint(tiny_checkpoint).network
    assert infer_config(network).num_heads == 8
    assert infer_config(network, num_heads=2).num_heads == 2


def test_random_checkpoint_round_trips_through_files(tmp_path, tiny_checkpoint):
    torch.save({"state_dict": tiny_checkpoint, "global_step": 0, "epoch": 0}, tmp_path / "model.ckpt")
    save_file(tiny_checkpoint, str(tmp_path / "model.safetensors"))
    torch.save(tiny_checkpoint, tmp_path / "bare.pt")
    for name in ("model.ckpt", "model.safetensors", "bare.pt"):
        loaded = load_checkpoint(tmp_path / name)
        assert loaded.config == fast_tiny_config().replace(num_heads=8)
        assert torch.equal(loaded.model.cc_projection.weight, tiny_checkpoint["cc_projection.weight"])


def test_a_stable_diffusion_checkpoint_is_refused_with_what_was_expected():
    sd = {
        "model.diffusion_model.input_blocks.0.0.weight": torch.zeros(320, 4, 3, 3),
        "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight": torch.zeros(4, 4),
    }
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(sd)
    message = str(info.value)
    assert "not a SyncDreamer checkpoint" in message
    assert "spatial_volume.spatial_volume_feats.init_conv.weight" in message
    assert "Stable Diffusion" in message


def test_a_zero123_checkpoint_is_recognised():
    sd = {"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(320, 8, 3, 3),
          "cc_projection.weight": torch.zeros(768, 772)}
    with pytest.raises(CheckpointError, match="Zero123"):
        load_checkpoint(sd)


def test_missing_and_unexpected_keys_are_reported_precisely(tiny_checkpoint):
    broken = dict(tiny_checkpoint)
    del broken["model.diffusion_model.output_conditions.3.proj_out.2.weight"]
    with pytest.raises(CheckpointError, match=r"1 missing: model\.diffusion_model\.output_conditions\.3\.proj_out\.2\.weight"):
        load_checkpoint(broken, with_vae=False, with_clip=False)
    extra = dict(tiny_checkpoint)
    extra["spatial_volume.something_new.weight"] = torch.zeros(3)
    with pytest.raises(CheckpointError, match=r"1 unexpected: spatial_volume\.something_new\.weight"):
        load_checkpoint(extra, with_vae=False, with_clip=False)
    stray = dict(tiny_checkpoint)
    stray["optimizer_state.step"] = torch.zeros(1)
    with pytest.raises(CheckpointError, match="belong to no SyncDreamer component: optimizer_state.step"):
        load_checkpoint(stray, with_vae=False, with_clip=False)


def test_shape_mismatches_are_reported(tiny_checkpoint):
    broken = dict(tiny_checkpoint)
    key = "model.diffusion_model.middle_conditions.proj_context.0.weight"
    broken[key] = torch.zeros(3, 3, 1, 1, 1)
    with pytest.raises(CheckpointError, match="other shapes"):
        load_checkpoint(broken, with_vae=False, with_clip=False)


def test_missing_buffers_fall_back_to_the_reference_constants(tiny_checkpoint):
    stripped = {k: v for k, v in tiny_checkpoint.items() if k not in ("poses", "Ks", "alphas_cumprod")}
    loaded = load_checkpoint(stripped, with_vae=False, with_clip=False)
    assert torch.allclose(loaded.model.poses, tiny_checkpoint["poses"])
    assert torch.allclose(loaded.model.alphas_cumprod, tiny_checkpoint["alphas_cumprod"])


@pytest.mark.parametrize("suffix", [".ckpt", ".safetensors"])
def test_truncated_files_give_a_clear_error(tmp_path, tiny_checkpoint, suffix):
    path = tmp_path / f"model{suffix}"
    if suffix == ".ckpt":
        torch.save({"state_dict": tiny_checkpoint}, path)
    else:
        save_file(tiny_checkpoint, str(path))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        read_state_dict(path)


class _Payload:
    """Unpickling this would create a marker file: the proof that code ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "pickled code ran"))


def test_pickled_code_is_never_executed(tmp_path, tiny_checkpoint):
    marker = tmp_path / "marker.txt"
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": tiny_checkpoint, "callbacks": _Payload(marker)}, path)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    assert not marker.exists()
    assert "cannot be loaded safely" in str(info.value)
    assert "--trust-pickled-code" in str(info.value)


def test_missing_file_says_what_to_download(tmp_path):
    with pytest.raises(FileNotFoundError, match="syncdreamer-pretrain.ckpt"):
        load_checkpoint(tmp_path / "nope.ckpt")


def test_a_file_without_a_state_dict_is_refused(tmp_path):
    path = tmp_path / "list.ckpt"
    torch.save([1, 2, 3], path)
    with pytest.raises(CheckpointError, match="no state dict"):
        load_checkpoint(path)


def test_convert_writes_fp16_safetensors_without_the_text_tower(tmp_path, tiny_checkpoint):
    source = dict(tiny_checkpoint)
    source["clip_image_encoder.model.transformer.resblocks.0.ln_1.weight"] = torch.ones(64)
    torch.save({"state_dict": source, "global_step": 0}, tmp_path / "model.ckpt")
    info = convert_checkpoint(tmp_path / "model.ckpt", tmp_path / "model.safetensors", "fp16", num_heads=2)
    converted, metadata = read_state_dict(tmp_path / "model.safetensors")
    assert info["dropped"] == sum(1 for k in source if k.startswith("clip_image_encoder.model.") and ".visual." not in k)
    assert not any(".transformer.resblocks.0.ln_1" in k and "visual" not in k for k in converted)
    assert converted["cc_projection.weight"].dtype == torch.float16
    assert converted["alphas_cumprod"].dtype == torch.float32 and converted["poses"].dtype == torch.float32
    loaded = load_checkpoint(tmp_path / "model.safetensors")
    assert loaded.config.num_heads == 2  # carried in the file's metadata
    assert torch.equal(loaded.model.cc_projection.weight, source["cc_projection.weight"].half().float())


def test_convert_of_an_unsafe_pickle_needs_explicit_trust(tmp_path, tiny_checkpoint):
    path = tmp_path / "model.ckpt"
    torch.save({"state_dict": tiny_checkpoint, "hparams": pickle.loads(pickle.dumps(_Marker()))}, path)
    with pytest.raises(CheckpointError, match="cannot be loaded safely"):
        convert_checkpoint(path, tmp_path / "out.safetensors")
    convert_checkpoint(path, tmp_path / "out.safetensors", trust_pickled_code=True)
    assert load_checkpoint(tmp_path / "out.safetensors", with_vae=False, with_clip=False).config.model_channels == 32


class _Marker:
    pass


@pytest.mark.parametrize("dtype", ["fp16", "bf16"])
def test_half_precision_keeps_constants_in_float32(tiny_checkpoint, dtype):
    loaded = load_checkpoint(tiny_checkpoint, dtype=dtype, with_vae=False, with_clip=False)
    assert loaded.model.cc_projection.weight.dtype != torch.float32
    assert loaded.model.alphas_cumprod.dtype == torch.float32 and loaded.model.poses.dtype == torch.float32


def test_unknown_dtype_is_refused(tiny_checkpoint):
    with pytest.raises(ValueError, match="fp32, fp16, bf16"):
        load_checkpoint(tiny_checkpoint, dtype="fp8")


# ---------------------------------------------------------------- files as users really get them

def test_an_empty_file_says_the_download_did_not_complete(tmp_path):
    path = tmp_path / "syncdreamer-pretrain.ckpt"
    path.write_bytes(b"")
    with pytest.raises(CheckpointError, match="is empty .0 bytes.: the download or copy did not complete"):
        load_checkpoint(path)


@pytest.mark.parametrize("fraction", [0.01, 0.5])
def test_a_half_downloaded_ckpt_is_called_truncated(tmp_path, tiny_checkpoint, fraction):
    path = tmp_path / "model.ckpt"
    torch.save({"state_dict": tiny_checkpoint}, path)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(CheckpointError, match="truncated or corrupt") as info:
        load_checkpoint(path)
    assert "--trust-pickled-code" not in str(info.value)


def test_a_web_page_saved_as_ckpt_is_recognised(tmp_path):
    path = tmp_path / "syncdreamer-pretrain.ckpt"
    path.write_text("<!DOCTYPE html><html><head><title>Google Drive - Virus scan warning</title></head></html>")
    with pytest.raises(CheckpointError, match="is a web page .HTML., not a checkpoint") as info:
        load_checkpoint(path)
    assert "--trust-pickled-code" not in str(info.value) and "confirm the download" in str(info.value)


@pytest.mark.parametrize("name", ["renamed.ckpt", "UPPER.SAFETENSORS", "no_suffix"])
def test_safetensors_are_recognised_by_content_not_name(tmp_path, tiny_checkpoint, name):
    save_file(tiny_checkpoint, str(tmp_path / name))
    loaded = load_checkpoint(tmp_path / name, with_vae=False, with_clip=False)
    assert torch.equal(loaded.model.cc_projection.weight, tiny_checkpoint["cc_projection.weight"])


def test_an_unreadable_file_names_the_permission_problem(tmp_path, tiny_checkpoint, monkeypatch):
    """A file this user may not read (simulated: tests often run as root, who reads anything)."""
    path = tmp_path / "model.safetensors"
    save_file(tiny_checkpoint, str(path))
    path.chmod(0o600)
    real_open = Path.open

    def refuse(self, *args, **kwargs):
        if self == path:
            raise PermissionError(13, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", refuse)
    with pytest.raises(CheckpointError, match=r"permission denied \(its mode is -rw-------\)\. .*chmod a\+r"):
        load_checkpoint(path)


def test_nan_weights_are_refused_at_load(tiny_checkpoint):
    broken = dict(tiny_checkpoint)
    broken["model.diffusion_model.out.2.weight"] = torch.full_like(broken["model.diffusion_model.out.2.weight"],
                                                                   float("nan"))
    with pytest.raises(CheckpointError, match="NaN or infinite values .*out.2.weight"):
        load_checkpoint(broken, with_vae=False, with_clip=False)


def test_wrongly_shaped_encoder_weights_are_clear_errors_at_load(tiny_checkpoint):
    vae = dict(tiny_checkpoint)
    vae["first_stage_model.decoder.conv_out.weight"] = torch.zeros(3, 7, 3, 3)
    with pytest.raises(CheckpointError, match="not a Stable Diffusion 1.x VAE: .*other shapes"):
        load_checkpoint(vae)
    clip = dict(tiny_checkpoint)
    clip["clip_image_encoder.model.visual.ln_post.weight"] = torch.ones(5)
    with pytest.raises(CheckpointError, match="CLIP vision weights .* other shapes"):
        load_checkpoint(clip)


def test_a_unet_without_eight_input_channels_is_refused_at_load(tiny_checkpoint):
    broken = dict(tiny_checkpoint)
    weight = broken["model.diffusion_model.input_blocks.0.0.weight"]
    broken["model.diffusion_model.input_blocks.0.0.weight"] = weight[:, :4].clone()
    with pytest.raises(CheckpointError, match="must take 8 input channels"):
        load_checkpoint(broken, with_vae=False, with_clip=False)


def test_convert_writes_a_readable_file_and_never_overwrites_its_input(tmp_path, tiny_checkpoint):
    import os
    import stat

    from syncdreamer_core.weights.checkpoint import default_conversion_path

    source = tmp_path / "model.safetensors"
    save_file(tiny_checkpoint, str(source))
    before = source.read_bytes()
    target = default_conversion_path(source, "fp16")
    assert target == tmp_path / "model-fp16.safetensors"
    convert_checkpoint(source, target, "fp16", num_heads=2)
    assert source.read_bytes() == before
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask
    with pytest.raises(ValueError, match="is the input file"):
        convert_checkpoint(source, source, "fp16")
    with pytest.raises(ValueError, match="exists; choose another --output or pass --overwrite"):
        convert_checkpoint(source, target, "fp16")
    convert_checkpoint(source, target, "fp16", overwrite=True)


def test_devices_that_do_not_exist_fail_before_loading():
    from syncdreamer_core.weights.checkpoint import check_device

    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no usable CUDA"):
            check_device("cuda")
    with pytest.raises(ValueError, match="unknown device"):
        check_device("gpu0")
