"""Safe loading of SyncDreamer checkpoints and their conversion to safetensors.

Accepted: the official Lightning checkpoint ``syncdreamer-pretrain.ckpt``
(``{"state_dict": ...}``), a bare state dict, and safetensors files, recognised by
their content (a renamed or upper-case ``.SAFETENSORS`` file loads too). Pickled files
are read with ``torch.load(weights_only=True)`` only: a file that needs arbitrary code
to unpickle is refused with an explanation, never loaded unsafely behind the user's back.

The official key names are the canonical layout. Every hyper-parameter the weight
shapes determine is read from them; ``num_heads`` of the UNet transformers is not
(the released model uses 8) and can be overridden.
"""

from __future__ import annotations

import json
import os
import pickle
import stat
import struct
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..cameras import target_cameras, wrap_to_pi
from ..diffusion.schedule import scaled_linear_betas, schedule_buffers
from ..network.config import SyncDreamerConfig
from ..network.memory_format import use_preferred_memory_format
from ..network.model import CAMERA_BUFFERS, SCHEDULE_BUFFERS, SyncDreamer
from .keys import CheckpointError, key_mismatch
from .storage import store_weights_as

__all__ = ["CheckpointError", "LoadedCheckpoint", "convert_checkpoint", "load_checkpoint", "read_state_dict"]

NETWORK_PREFIXES = ("model.diffusion_model.", "spatial_volume.", "time_embed.", "cc_projection.")
NETWORK_BUFFERS = CAMERA_BUFFERS + SCHEDULE_BUFFERS
VAE_PREFIX = "first_stage_model."
CLIP_PREFIX = "clip_image_encoder.model."
CLIP_VISUAL_PREFIX = CLIP_PREFIX + "visual."
#: The CLIP text tower rides along in the official checkpoint but is never used.
CLIP_TEXT_KEYS = ("transformer.", "token_embedding.", "positional_embedding", "ln_final.",
                  "text_projection", "logit_scale")
#: Keys whose presence identifies SyncDreamer rather than Stable Diffusion or Zero123.
SIGNATURE_KEYS = (
    "spatial_volume.spatial_volume_feats.init_conv.weight",
    "model.diffusion_model.middle_conditions.proj_in.0.weight",
    "cc_projection.weight",
)
OFFICIAL_FILENAME = "syncdreamer-pretrain.ckpt"
#: The official file as mirrored on Hugging Face (the release links the same bytes on Google Drive).
OFFICIAL_URL = "https://huggingface.co/camenduru/SyncDreamer/resolve/main/syncdreamer-pretrain.ckpt"
OFFICIAL_SOURCE = (
    f"{OFFICIAL_FILENAME} (`python -m syncdreamer_core download`, or {OFFICIAL_URL}; linked from "
    "https://github.com/liuyuan-pal/SyncDreamer#preparation-for-inference)"
)
#: Size of the official file in bytes, to tell a finished download from one that stopped.
OFFICIAL_SIZE = 5_570_034_171
OFFICIAL_SIZE_GB = 5.6
CONFIG_METADATA_KEY = "syncdreamer_config"
DTYPES = {"fp32": torch.float32, "float32": torch.float32, "fp16": torch.float16, "float16": torch.float16,
          "bf16": torch.bfloat16, "bfloat16": torch.bfloat16}


@dataclass
class CheckpointParts:
    """A SyncDreamer state dict split by owner (prefixes removed for vae/clip_visual)."""

    network: dict[str, torch.Tensor]
    vae: dict[str, torch.Tensor]
    clip_visual: dict[str, torch.Tensor]
    ignored: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)


# ---------------------------------------------------------------- reading files

def _describe(path: Path) -> str:
    try:
        return f"{path} ({path.stat().st_size / 2**20:.1f} MiB)"
    except OSError:
        return str(path)


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def _redownload(path: Path) -> str:
    return (f"Download it again ({OFFICIAL_SOURCE}; the official file is {OFFICIAL_SIZE_GB} GB) "
            f"and replace {path}.")


def sniff_format(path: Path) -> str:
    """'safetensors', 'zip' (torch.save), 'pickle' (legacy torch.save), 'html' or 'unknown',
    from the file's first bytes. Raises CheckpointError for files that cannot be read."""
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            head = handle.read(64)
    except PermissionError:
        mode = stat.filemode(path.stat().st_mode)
        raise CheckpointError(
            f"{path} cannot be read: permission denied (its mode is {mode}). Make it readable by the user "
            f"running this program, e.g. `chmod a+r {path}`.") from None
    except OSError as error:
        raise CheckpointError(f"{path} cannot be read: {_first_line(error)}") from None
    if size == 0:
        raise CheckpointError(f"{path} is empty (0 bytes): the download or copy did not complete. {_redownload(path)}")
    if head[:4] == b"PK\x03\x04":
        return "zip"
    if len(head) >= 9 and head[8:9] == b"{":
        header_length = struct.unpack("<Q", head[:8])[0]
        if 2 <= header_length <= size - 8:
            return "safetensors"
    text = head.lstrip().lower()
    if text.startswith((b"<!doctype html", b"<html", b"<head", b"<?xml", b"<!--")):
        return "html"
    if head[:1] == b"\x80":
        return "pickle"
    return "unknown"


def read_state_dict(path: str | os.PathLike, shapes_only: bool = False
                    ) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read tensors from a safetensors file or a weights-only pickle; returns (state dict, metadata).
    ``shapes_only``: tensors on the meta device (keys, shapes and dtypes; the weights are not read)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"checkpoint not found: {path}. Download {OFFICIAL_SOURCE} and point to it, "
            "or place it in ComfyUI/models/syncdreamer/."
        )
    if not path.is_file():
        raise CheckpointError(f"{path} is not a file (a folder?): give the checkpoint file itself")
    kind = sniff_format(path)
    if kind == "html":
        raise CheckpointError(
            f"{_describe(path)} is a web page (HTML), not a checkpoint: the download saved a web page (for "
            "Google Drive, usually its 'cannot scan this file for viruses' confirmation or a sign-in page) "
            f"instead of the file. Open the link in a browser and confirm the download. {_redownload(path)}")
    if kind == "safetensors":
        return _read_safetensors(path, shapes_only)
    if kind == "zip" and not _is_torch_zip(path):
        raise CheckpointError(_zip_archive_message(path))
    if kind == "unknown":
        raise CheckpointError(
            f"{_describe(path)} is neither a safetensors file nor a PyTorch checkpoint (its first bytes are "
            f"{path.open('rb').read(8)!r}). {_redownload(path)}")
    check_official_size(path)
    try:
        data = torch_load(path, kind, weights_only=True)
    except pickle.UnpicklingError as error:
        found = _unsafe_globals(path, kind)
        if not found:
            raise CheckpointError(
                f"{_describe(path)} could not be read ({_first_line(error)}). The file is probably truncated or "
                f"corrupt (an interrupted download?). {_redownload(path)}") from None
        raise CheckpointError(
            f"{_describe(path)} is a complete PyTorch checkpoint, but it cannot be loaded safely: besides its "
            f"weights it stores Python objects that only pickled code can rebuild ({', '.join(found[:8])}), and "
            "this loader never runs pickled code. If you trust where the file came from, convert it once with "
            f"`python -m syncdreamer_core convert {path} --trust-pickled-code`: that reads it with full unpickling, "
            "keeps only the weights and writes a .safetensors file you load from then on.") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError, IndexError) as error:
        raise CheckpointError(
            f"{_describe(path)} could not be read: {_first_line(error)}. The file is probably truncated or "
            f"corrupt (an interrupted download?). {_redownload(path)}") from None
    state_dict = unwrap_state_dict(data, path)
    if shapes_only:
        state_dict = {k: torch.empty(v.shape, dtype=v.dtype, device="meta") for k, v in state_dict.items()}
    return state_dict, {}


def check_official_size(path: Path, size: int = OFFICIAL_SIZE, name: str = OFFICIAL_FILENAME,
                        always: bool = False) -> None:
    """A file under the official name (or any file, ``always``) must have the official size: a
    shorter one is a download that stopped (resumable), any other is another file under that name."""
    if not always and path.name != name:
        return
    found = path.stat().st_size
    if found < size:
        raise CheckpointError(
            f"{path} is truncated: {found:,} of the official {size:,} bytes. The download stopped early; "
            f"the loader's Download checkpoint button, or `python -m syncdreamer_core download --to {path.parent}`, "
            f"continues it from byte {found:,} (and deletes it if the whole file is not the official one).")
    if found != size:
        raise CheckpointError(
            f"{path} is {found:,} bytes, the official {name} {size:,}: this is another file "
            "under the official name. Give it another name, or replace it with the official file "
            "(`python -m syncdreamer_core download`).")


def check_official_layout(path, config: SyncDreamerConfig) -> None:
    """The official file's network is the released one; anything else under its name is a
    different model (the official name, or its conversion's)."""
    if Path(str(path)).stem != Path(OFFICIAL_FILENAME).stem:
        return
    released = SyncDreamerConfig()
    differences = [f"{field} {getattr(config, field)} (released: {getattr(released, field)})"
                   for field in ("model_channels", "channel_mult", "num_res_blocks", "attention_resolutions",
                                 "context_dim", "spatial_volume_dims", "frustum_volume_dims", "view_count")
                   if getattr(config, field) != getattr(released, field)]
    if differences:
        raise CheckpointError(f"{path} is a different model under the official name: {'; '.join(differences)}. "
                              "Replace it with the official file (`python -m syncdreamer_core download`).")


def _zip_names(path: Path) -> list[str]:
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return []


def _is_torch_zip(path: Path) -> bool:
    """A torch.save archive holds <name>/data.pkl; an unreadable zip is judged by torch (truncated)."""
    names = _zip_names(path)
    return not names or any(name.endswith("data.pkl") for name in names)


def _zip_archive_message(path: Path) -> str:
    names = _zip_names(path)
    inside = [n for n in names if n.lower().endswith((".safetensors", ".ckpt", ".pt", ".pth", ".bin"))]
    listed = ", ".join((inside or names)[:4]) + (" ..." if len(inside or names) > 4 else "")
    advice = (f"unzip it and use {inside[0]} from inside" if len(inside) == 1 else
              "unzip it and use the checkpoint inside" if inside else "it holds no checkpoint")
    return f"{_describe(path)} is a zip archive of other files ({listed}), not a PyTorch checkpoint: {advice}."


def torch_load(path: Path, kind: str, weights_only: bool = True):
    """``torch.load`` of a pickled checkpoint whatever its name: torch hands any path ending
    in '.safetensors' to safetensors, so a renamed pickle is read through a file handle."""
    if path.name.endswith(".safetensors"):
        with path.open("rb") as handle:
            return torch.load(handle, map_location="cpu", weights_only=weights_only)
    return torch.load(str(path), map_location="cpu", weights_only=weights_only, mmap=kind == "zip")


#: Globals every PyTorch checkpoint references and weights-only loading accepts.
_EXPECTED_GLOBALS = ("torch.", "collections.OrderedDict", "builtins.")


def _unsafe_globals(path: Path, kind: str) -> list[str]:
    """The Python classes and functions a pickled checkpoint references beyond tensors,
    read from its opcodes without running them (empty when it cannot be parsed)."""
    if kind == "zip":
        try:
            return list(torch.serialization.get_unsafe_globals_in_checkpoint(str(path)))
        except Exception:  # noqa: BLE001 - only used to choose the message
            return []
    import pickletools

    found: list[str] = []
    try:
        with path.open("rb") as handle:
            # The legacy format: pickles of the magic number, the protocol, system info, then
            # the object itself (raw storage bytes follow).
            for _ in range(4):
                strings: list[str] = []
                for opcode, argument, _ in pickletools.genops(handle):
                    if opcode.name == "GLOBAL":
                        name = str(argument).replace(" ", ".")
                    elif opcode.name == "STACK_GLOBAL" and len(strings) >= 2:
                        name = f"{strings[-2]}.{strings[-1]}"
                    else:
                        if isinstance(argument, str):
                            strings.append(argument)
                        continue
                    if not name.startswith(_EXPECTED_GLOBALS) and name not in found:
                        found.append(name)
    except Exception:  # noqa: BLE001 - cut short: a truncated file, not one that needs code
        return []
    return found


_SAFETENSORS_DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "F64": torch.float64,
                       "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
                       "BOOL": torch.bool}


def _read_safetensors(path: Path, shapes_only: bool = False) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    from safetensors import SafetensorError, safe_open

    try:
        tensors = {}
        with safe_open(str(path), framework="pt") as handle:
            metadata = dict(handle.metadata() or {})
            for key in handle.keys():  # noqa: SIM118 - safe_open has no items()
                if shapes_only:
                    view = handle.get_slice(key)
                    tensors[key] = torch.empty(view.get_shape(), device="meta",
                                               dtype=_SAFETENSORS_DTYPES.get(view.get_dtype(), torch.float32))
                else:
                    tensors[key] = handle.get_tensor(key)
        return tensors, metadata
    except (SafetensorError, OSError, ValueError, RuntimeError) as error:
        raise CheckpointError(
            f"{_describe(path)} is not a readable safetensors file ({_first_line(error)}); it may be truncated "
            "or corrupt: download or convert it again.") from None


def unwrap_state_dict(data, source="checkpoint") -> dict[str, torch.Tensor]:
    """Accept a Lightning checkpoint ({"state_dict": ...}) or a bare state dict."""
    if isinstance(data, dict) and isinstance(data.get("state_dict"), dict):
        data = data["state_dict"]
    if not isinstance(data, dict) or not data or not all(torch.is_tensor(v) for v in data.values()):
        raise CheckpointError(
            f"{source} holds no state dict of tensors (expected a Lightning checkpoint with a "
            "'state_dict' entry, a bare state dict, or a .safetensors file)"
        )
    return data


# ---------------------------------------------------------------- classifying keys

def _looks_like(state_dict: dict) -> str:
    first = state_dict.get("model.diffusion_model.input_blocks.0.0.weight")
    if first is not None and first.ndim == 4:
        if "cc_projection.weight" in state_dict and first.shape[1] == 8:
            return " It looks like a Zero123 checkpoint (8-channel UNet, no spatial volume)."
        if first.shape[1] == 4 or "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight" in state_dict:
            return " It looks like a Stable Diffusion checkpoint."
    if any(k.startswith("vision_model.") for k in state_dict):
        return " It looks like a CLIP vision model."
    if any(k.startswith(("encoder.down.", "decoder.up.")) for k in state_dict):
        return " It looks like a standalone VAE."
    return ""


def split_checkpoint(state_dict: dict[str, torch.Tensor], source: str = "checkpoint") -> CheckpointParts:
    """Split by owner; refuses a state dict that is not SyncDreamer."""
    absent = [k for k in SIGNATURE_KEYS if k not in state_dict]
    if absent:
        sample = ", ".join(list(state_dict)[:3])
        raise CheckpointError(
            f"{source} is not a SyncDreamer checkpoint: it lacks {', '.join(absent)} "
            f"(the spatial volume, depth-wise attention and CLIP projection weights every SyncDreamer "
            f"model has).{_looks_like(state_dict)} First keys: {sample}. Expected {OFFICIAL_SOURCE} "
            "or a conversion of it."
        )
    parts = CheckpointParts({}, {}, {})
    for key, value in state_dict.items():
        if key.startswith(NETWORK_PREFIXES) or key in NETWORK_BUFFERS:
            parts.network[key] = value
        elif key.startswith(VAE_PREFIX):
            parts.vae[key[len(VAE_PREFIX):]] = value
        elif key.startswith(CLIP_VISUAL_PREFIX):
            parts.clip_visual[key[len(CLIP_VISUAL_PREFIX):]] = value
        elif key.startswith(CLIP_PREFIX) and key[len(CLIP_PREFIX):].startswith(CLIP_TEXT_KEYS):
            parts.ignored.append(key)
        else:
            parts.unknown.append(key)
    return parts


def check_finite(tensors: dict[str, torch.Tensor], source: str) -> None:
    """Refuse weights with NaN or infinite values (they give black images, not an error)."""
    bad = []
    for key, value in tensors.items():
        if value.is_floating_point() and not value.is_meta and not bool(torch.isfinite(value).all()):
            bad.append(key)
    if bad:
        raise CheckpointError(
            f"{source} has {len(bad)} weight tensors with NaN or infinite values (e.g. {', '.join(bad[:4])}): "
            f"the file is damaged. {_redownload(Path(source))}")


# ---------------------------------------------------------------- configuration

def _shape(sd: dict, key: str) -> torch.Size:
    try:
        return sd[key].shape
    except KeyError:
        raise CheckpointError(f"cannot read the network layout: weight {key!r} is missing") from None


def infer_config(network: dict[str, torch.Tensor], num_heads: int | None = None) -> SyncDreamerConfig:
    """The configuration the network weights imply; ``num_heads`` defaults to the released 8."""
    prefix = "model.diffusion_model."
    mc, in_channels = _shape(network, prefix + "input_blocks.0.0.weight")[:2]
    downsamples = sorted(
        int(k.split(".")[3]) for k in network if k.startswith(prefix + "input_blocks.") and k.endswith(".0.op.weight")
    )
    if not downsamples:
        raise CheckpointError("cannot read the network layout: the UNet has no downsampling blocks")
    num_res_blocks = downsamples[0] - 1
    levels = len(downsamples) + 1
    channel_mult, attention = [], []
    for level in range(levels):
        first = 1 + level * (num_res_blocks + 1)
        out_ch = _shape(network, f"{prefix}input_blocks.{first}.0.out_layers.3.weight")[0]
        channel_mult.append(out_ch // mc)
        if f"{prefix}input_blocks.{first}.1.norm.weight" in network:
            attention.append(2**level)
    depth = len({k.split(".")[5] for k in network if k.startswith(prefix + "middle_block.1.transformer_blocks.")})
    context_dim = _shape(network, prefix + "middle_block.1.transformer_blocks.0.attn2.to_k.weight")[1]
    out_channels = _shape(network, prefix + "out.2.weight")[0]

    def dims(net: str, first: str) -> tuple[int, int, int, int]:
        base = f"spatial_volume.{net}."
        return tuple(
            _shape(network, base + name)[0]
            for name in (first, "conv1.conv.weight", "conv3.conv.weight", "conv5.conv.weight")
        )

    volume_in = _shape(network, "spatial_volume.spatial_volume_feats.init_conv.weight")[1]
    per_view = _shape(network, "spatial_volume.target_encoder.final_out.2.weight")[0]
    time_dim = _shape(network, "time_embed.0.weight")[1]
    cc_in = _shape(network, "cc_projection.weight")[1]
    config = dict(
        model_channels=mc, channel_mult=tuple(channel_mult), num_res_blocks=num_res_blocks,
        attention_resolutions=tuple(attention), transformer_depth=depth, context_dim=context_dim,
        in_channels=in_channels, out_channels=out_channels,
        spatial_volume_dims=dims("spatial_volume_feats", "init_conv.weight"),
        frustum_volume_dims=dims("frustum_volume_feats", "conv0.weight"),
        view_count=volume_in // per_view, target_encoder_channels=per_view, time_embed_dim=time_dim,
        viewpoint_dim=cc_in - context_dim, num_heads=8 if num_heads is None else num_heads,
    )
    try:
        return SyncDreamerConfig(**config)
    except ValueError as error:
        raise CheckpointError(f"the checkpoint implies an unusable configuration: {error}") from None


# ---------------------------------------------------------------- building the network

def default_buffers(config: SyncDreamerConfig) -> dict[str, torch.Tensor]:
    cameras = target_cameras(config.view_count)
    buffers = {"poses": cameras.poses, "Ks": cameras.K, "azimuth": wrap_to_pi(cameras.azimuths)}
    buffers.update(schedule_buffers(scaled_linear_betas()))
    return buffers


def build_network(network: dict[str, torch.Tensor], config: SyncDreamerConfig,
                  dtype=torch.float32, device="cpu") -> SyncDreamer:
    """Instantiate without initialising weights and load ``network`` strictly."""
    with torch.device("meta"):
        model = SyncDreamer(config)
    expected = {k: v.shape for k, v in model.state_dict().items()}
    problem = key_mismatch(expected, network, may_be_missing=NETWORK_BUFFERS)
    if problem:
        raise CheckpointError(
            "the SyncDreamer weights do not match the network their shapes describe "
            f"({config.model_channels} channels, mult {config.channel_mult}): {problem}"
        )
    defaults = default_buffers(config) if any(k not in network for k in expected) else {}
    tensors = {}
    for key in expected:
        value = network[key] if key in network else defaults[key]
        target = torch.float32 if key in NETWORK_BUFFERS else dtype
        tensors[key] = value.to(device=device, dtype=target)
    model.load_state_dict(tensors, strict=True, assign=True)
    return model.eval().requires_grad_(False)


# ---------------------------------------------------------------- the public loader

@dataclass
class LoadedCheckpoint:
    """The network plus (optionally) the VAE and CLIP encoders of one checkpoint."""

    model: SyncDreamer
    config: SyncDreamerConfig
    vae: object | None = None
    clip: object | None = None
    parts: CheckpointParts | None = None
    path: str | None = None

    def encoders(self):
        """The checkpoint's encoders for ``conditioning.encode_conditioning``."""
        from .encoders import CheckpointEncoders

        if self.vae is None or self.clip is None:
            raise ValueError("this checkpoint was loaded without its VAE and CLIP encoder")
        return CheckpointEncoders(self.vae, self.clip)


def stored_num_heads(text: str, source: str) -> int | None:
    """``num_heads`` from the configuration a conversion stores in the file's metadata."""
    try:
        value = json.loads(text).get("num_heads")
    except (ValueError, AttributeError):
        raise CheckpointError(f"{source} carries malformed '{CONFIG_METADATA_KEY}' metadata ({text[:60]!r}): it was "
                              "edited or damaged; convert the original checkpoint again") from None
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise CheckpointError(f"{source} carries a bad num_heads ({value!r}) in its '{CONFIG_METADATA_KEY}' metadata; "
                              "convert the original checkpoint again")
    return value


def resolve_dtype(dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    if not isinstance(dtype, str) or dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; choose one of fp32, fp16, bf16")
    return DTYPES[dtype]


def check_device(device, dtype: torch.dtype | None = None) -> torch.device:
    """``device`` as a torch device that exists here and can compute in ``dtype``."""
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"unknown device {device!r} ({_first_line(error)}); use cpu, cuda, cuda:1 or mps") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device} was asked for, but this torch has no usable CUDA "
                             f"(torch {torch.__version__}); use --device cpu or install a CUDA build of torch")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"device {device} does not exist: this machine has {torch.cuda.device_count()} CUDA "
                             "device(s)")
        if dtype == torch.bfloat16 and not torch.cuda.is_bf16_supported():
            raise ValueError(f"{torch.cuda.get_device_name(device)} cannot compute in bf16; choose fp16 or fp32")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError("device mps was asked for, but Metal is not available here; use cpu")
    elif device.type not in ("cpu", "cuda", "mps", "meta", "xpu"):
        raise ValueError(f"unsupported device {device}; use cpu, cuda or mps")
    return device


def encoder_dtype(dtype: torch.dtype, device) -> torch.dtype:
    """Half precision for the encoders only where it is fast: on an accelerator."""
    return torch.float32 if torch.device(device).type == "cpu" else dtype


def load_checkpoint(source: str | os.PathLike | dict, dtype="fp32", device="cpu",
                    num_heads: int | None = None, with_vae: bool = True, with_clip: bool = True,
                    keep_parts: bool = False, weight_dtype=None, compute_device=None) -> LoadedCheckpoint:
    """Load a SyncDreamer checkpoint (path or state dict) into ready-to-use modules.

    ``dtype`` is the network's compute dtype; ``weight_dtype`` (default: the same)
    stores its weights narrower, e.g. fp16 weights with fp32 compute to halve memory.
    Unused CLIP text-tower weights are skipped; any other unknown key is an error.
    ``with_vae``/``with_clip`` build the encoders (a checkpoint without them, like the
    parity fixtures, must be loaded with both False). ``compute_device`` (default: ``device``)
    is where the network will run, which decides the layout of its convolutions (a host that
    loads on the CPU and moves the network to a GPU names the GPU).
    """
    dtype = resolve_dtype(dtype)
    weight_dtype = dtype if weight_dtype is None else resolve_dtype(weight_dtype)
    device = check_device(device, dtype)
    metadata: dict[str, str] = {}
    if isinstance(source, dict):
        state_dict, name = unwrap_state_dict(source), "state dict"
    else:
        state_dict, metadata = read_state_dict(source)
        name = str(source)
    parts = split_checkpoint(state_dict, name)
    parts.metadata = metadata
    if parts.unknown:
        raise CheckpointError(
            f"{name} has {len(parts.unknown)} keys that belong to no SyncDreamer component: "
            f"{', '.join(parts.unknown[:6])}"
        )
    if num_heads is None and CONFIG_METADATA_KEY in metadata:
        num_heads = stored_num_heads(metadata[CONFIG_METADATA_KEY], name)
    config = infer_config(parts.network, num_heads)
    check_official_layout(name, config)
    check_finite({**parts.network, **{VAE_PREFIX + k: v for k, v in parts.vae.items()},
                  **{CLIP_VISUAL_PREFIX + k: v for k, v in parts.clip_visual.items()}}, name)
    if with_vae and not parts.vae:
        raise CheckpointError(f"{name} has no VAE weights (first_stage_model.*)")
    if with_clip and not parts.clip_visual:
        raise CheckpointError(f"{name} has no CLIP image encoder weights (clip_image_encoder.model.visual.*)")
    model = store_weights_as(build_network(parts.network, config, weight_dtype, device), weight_dtype, dtype)
    model = use_preferred_memory_format(model, device if compute_device is None else compute_device, dtype)
    vae = clip = None
    if with_vae:
        from .encoders import build_vae

        vae = build_vae(parts.vae, dtype=encoder_dtype(dtype, device), device=device)
    if with_clip:
        from .encoders import build_clip_vision

        clip = build_clip_vision(parts.clip_visual, dtype=encoder_dtype(dtype, device), device=device)
    return LoadedCheckpoint(model, config, vae, clip, parts if keep_parts else None,
                            None if isinstance(source, dict) else str(source))


def inspect_checkpoint(path: str | os.PathLike, num_heads: int | None = None, with_encoders: bool = True
                       ) -> SyncDreamerConfig:
    """Everything ``load_checkpoint`` checks that the file's keys and shapes decide, without
    reading its weights (seconds, even for the 5 GB official file): a readable SyncDreamer
    checkpoint whose network matches the layout its shapes imply, with its VAE and CLIP
    image encoder. Returns the configuration; raises CheckpointError naming the problem."""
    state_dict, metadata = read_state_dict(path, shapes_only=True)
    name = str(path)
    parts = split_checkpoint(state_dict, name)
    if parts.unknown:
        raise CheckpointError(f"{name} has {len(parts.unknown)} keys that belong to no SyncDreamer component: "
                              f"{', '.join(parts.unknown[:6])}")
    if num_heads is None and CONFIG_METADATA_KEY in metadata:
        num_heads = stored_num_heads(metadata[CONFIG_METADATA_KEY], name)
    config = infer_config(parts.network, num_heads)
    check_official_layout(name, config)
    with torch.device("meta"):
        expected = {k: v.shape for k, v in SyncDreamer(config).state_dict().items()}
    problem = key_mismatch(expected, parts.network, may_be_missing=NETWORK_BUFFERS)
    if problem:
        raise CheckpointError(f"{name}: the SyncDreamer weights do not match the network their shapes describe: "
                              f"{problem}")
    if with_encoders:
        from .encoders import build_clip_vision, build_vae

        if not parts.vae:
            raise CheckpointError(f"{name} has no VAE weights (first_stage_model.*)")
        if not parts.clip_visual:
            raise CheckpointError(f"{name} has no CLIP image encoder weights (clip_image_encoder.model.visual.*)")
        build_vae(parts.vae, device="meta")  # their layouts, on no memory
        build_clip_vision(parts.clip_visual, device="meta")
    return config


# ---------------------------------------------------------------- conversion

def default_conversion_path(src: str | os.PathLike, dtype: str = "fp16") -> Path:
    """``X.ckpt`` -> ``X.safetensors``; ``X.safetensors`` -> ``X-fp16.safetensors`` (never the input)."""
    src = Path(src)
    if src.suffix.lower() == ".safetensors":
        return src.with_name(f"{src.stem}-{dtype}.safetensors")
    return src.with_suffix(".safetensors")


def convert_checkpoint(src: str | os.PathLike, dst: str | os.PathLike, dtype="fp16",
                       trust_pickled_code: bool = False, num_heads: int | None = None,
                       overwrite: bool = False) -> dict:
    """Write a SyncDreamer checkpoint as ``.safetensors`` (weights in ``dtype``, camera and
    schedule buffers kept float32, the unused CLIP text tower dropped).

    ``trust_pickled_code`` lets a pickle that weights-only loading refuses be read with
    full unpickling; only for files whose origin the user trusts.
    """
    dtype_name = dtype if isinstance(dtype, str) else str(dtype)
    dtype = resolve_dtype(dtype)
    src, dst = Path(src), Path(dst)
    if dst.suffix.lower() != ".safetensors":
        raise ValueError(f"the output must end in .safetensors, got {dst}")
    from ..outputs import check_name, check_writable_folder

    check_name(dst.name, "output name")
    check_writable_folder(dst.parent, "output's folder")
    if dst.exists() and src.exists() and dst.resolve() == src.resolve():
        raise ValueError(f"the output {dst} is the input file; choose another --output")
    if dst.is_dir():
        raise ValueError(f"the output {dst} is a folder; give a file name ending in .safetensors")
    if dst.exists() and not overwrite:
        raise ValueError(f"{dst} exists; choose another --output or pass --overwrite")
    if trust_pickled_code and src.is_file() and sniff_format(src) in ("zip", "pickle"):
        state_dict = unwrap_state_dict(torch_load(src, sniff_format(src), weights_only=False), src)
    else:
        state_dict, _ = read_state_dict(src)
    parts = split_checkpoint(state_dict, str(src))
    if parts.unknown:
        raise CheckpointError(f"{src} has keys that belong to no SyncDreamer component: {parts.unknown[:6]}")
    config = infer_config(parts.network, num_heads)
    check_official_layout(src, config)
    check_finite(state_dict, str(src))
    out = {}
    for key, value in state_dict.items():
        if key in parts.ignored:
            continue
        keep_fp32 = key in NETWORK_BUFFERS or not value.is_floating_point()
        out[key] = value.to(torch.float32 if keep_fp32 else dtype).contiguous()
    metadata = {"format": "pt", CONFIG_METADATA_KEY: json.dumps(config.to_dict())}
    from safetensors.torch import save_file

    from ..outputs import atomic_write

    try:
        # readable like any file the user writes (e.g. by ComfyUI's service user), complete or absent
        atomic_write(dst, lambda target: save_file(out, str(target), metadata=metadata), replace=overwrite)
    except FileExistsError:
        raise ValueError(f"{dst} was written by another conversion while this one ran; keep that one, or pass "
                         "--overwrite") from None
    return {"tensors": len(out), "dropped": len(parts.ignored), "bytes": dst.stat().st_size,
            "config": config.to_dict(), "dtype": dtype_name}
