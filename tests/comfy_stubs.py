"""Small stand-ins for the parts of ComfyUI the pack uses, so nodes and workflows can be
tested where no host is installed. They follow the host's documented behaviour: the
node schema (``comfy_api.latest``: inputs, outputs, the V1 description that /object_info
serves), noise scaling, the ddim_uniform schedule, the sampler calling convention, and
the output folder's save-path rules (no escaping the folder, numbered files). The
integration tests check the same nodes against real ComfyUI hosts."""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import math
import os
import sys
import types
from pathlib import Path

import torch


class Interrupted(Exception):
    pass


def _module(name: str, **attrs) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__dict__.update(attrs)
    return module


# ---------------------------------------------------------------- comfy_api.latest (node schema)

def _prune(values: dict) -> dict:
    return {k: v for k, v in values.items() if v is not None}


class _Input:
    io_type = "*"
    #: Options each input kind serialises, with the name /object_info uses.
    fields: dict[str, str] = {}

    def __init__(self, id, display_name=None, optional=False, tooltip=None, lazy=None, **options):
        unknown = set(options) - set(self.fields)
        if unknown:
            raise TypeError(f"{type(self).__name__} got unexpected options {sorted(unknown)}")
        self.id, self.display_name, self.optional, self.tooltip, self.lazy = id, display_name, optional, tooltip, lazy
        self.options = options

    def as_dict(self) -> dict:
        base = _prune({"display_name": self.display_name, "optional": self.optional, "tooltip": self.tooltip,
                       "lazy": self.lazy})
        return base | _prune({self.fields[k]: v for k, v in self.options.items()})


class _Output:
    io_type = "*"

    def __init__(self, id=None, display_name=None, tooltip=None, is_output_list=False):
        self.id, self.display_name, self.tooltip, self.is_output_list = id, display_name, tooltip, is_output_list


def _type(io_type: str, input_fields: dict | None = None, widget: bool = False):
    fields = {"default": "default", **(input_fields or {})} if widget else dict(input_fields or {})
    return type(io_type, (), {
        "io_type": io_type,
        "Input": type("Input", (_Input,), {"io_type": io_type, "fields": fields}),
        "Output": type("Output", (_Output,), {"io_type": io_type}),
    })


class _ComboInput(_Input):
    io_type = "COMBO"
    fields = {"default": "default", "control_after_generate": "control_after_generate", "upload": "upload"}

    def __init__(self, id, options=None, display_name=None, optional=False, tooltip=None, lazy=None, **kw):
        super().__init__(id, display_name, optional, tooltip, lazy, **kw)
        self.choices = list(options or [])

    def as_dict(self) -> dict:
        return super().as_dict() | {"multiselect": False, "options": self.choices}


@dataclasses.dataclass
class Schema:
    node_id: str
    display_name: str | None = None
    category: str = "sd"
    inputs: list = dataclasses.field(default_factory=list)
    outputs: list = dataclasses.field(default_factory=list)
    hidden: list = dataclasses.field(default_factory=list)
    description: str = ""
    search_aliases: list = dataclasses.field(default_factory=list)
    is_output_node: bool = False
    is_deprecated: bool = False
    is_experimental: bool = False
    not_idempotent: bool = False

    def validate(self) -> None:
        inputs = [i.id for i in self.inputs]
        outputs = [o.id for o in self.outputs]
        if len(set(inputs)) != len(inputs) or len(set(outputs)) != len(outputs) or set(inputs) & set(outputs):
            raise ValueError(f"{self.node_id}: input and output ids must be unique, got {inputs} / {outputs}")


class NodeOutput:
    def __init__(self, *args, ui=None, expand=None, block_execution=None):
        self.args, self.ui = args, ui

    @property
    def result(self):
        return self.args or None

    def __getitem__(self, index):
        return self.args[index]


class ComfyNode:
    """The parts of the host's base class the pack and the tests use."""

    @classmethod
    def GET_SCHEMA(cls) -> Schema:
        schema = cls.define_schema()
        schema.validate()
        return schema

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return node_info_v1(cls)["input"]

    @classmethod
    def execute_v1(cls, **kwargs):
        """What the host returns to the graph: the outputs as a tuple (and ui), from execute."""
        out = cls.execute(**kwargs)
        return out if isinstance(out, NodeOutput) else NodeOutput(*out)


def node_info_v1(cls) -> dict:
    """The /object_info entry of a schema node, built as the host builds it."""
    schema = cls.GET_SCHEMA()
    inputs: dict = {"required": {}}
    for item in schema.inputs:
        spec = item.as_dict()
        spec.pop("optional", None)
        inputs.setdefault("optional" if item.optional else "required", {})[item.id] = (item.io_type, spec)
    return {
        "input": inputs,
        "input_order": {key: list(value) for key, value in inputs.items()},
        "output": [o.io_type for o in schema.outputs],
        "output_is_list": [o.is_output_list for o in schema.outputs],
        "output_name": [o.display_name or o.io_type for o in schema.outputs],
        "output_tooltips": [o.tooltip for o in schema.outputs],
        "name": schema.node_id,
        "display_name": schema.display_name,
        "description": schema.description,
        "category": schema.category,
        "output_node": schema.is_output_node,
        "search_aliases": schema.search_aliases or None,
    }


class ComfyExtension:
    async def on_load(self) -> None:
        return None

    async def get_node_list(self) -> list:
        raise NotImplementedError


class Hidden(str, enum.Enum):
    unique_id = "UNIQUE_ID"
    prompt = "PROMPT"
    extra_pnginfo = "EXTRA_PNGINFO"


class MESH:
    """Current ComfyUI's MESH (fields as its constructor accepts them)."""

    def __init__(self, vertices, faces, uvs=None, vertex_colors=None, texture=None, vertex_counts=None,
                 face_counts=None, unlit=False):
        self.vertices, self.faces, self.uvs = vertices, faces, uvs
        self.vertex_colors, self.texture = vertex_colors, texture
        self.vertex_counts, self.face_counts, self.unlit = vertex_counts, face_counts, unlit


def comfy_api_modules(with_mesh_type: bool = True) -> dict[str, types.ModuleType]:
    number = {"min": "min", "max": "max", "step": "step", "display_mode": "display"}
    io = _module(
        "comfy_api.latest._io", STAND_IN=True,
        Schema=Schema, NodeOutput=NodeOutput, ComfyNode=ComfyNode, Hidden=Hidden,
        Int=_type("INT", {**number, "control_after_generate": "control_after_generate"}, widget=True),
        Float=_type("FLOAT", {**number, "round": "round"}, widget=True),
        String=_type("STRING", {"multiline": "multiline", "placeholder": "placeholder"}, widget=True),
        Boolean=_type("BOOLEAN", {"label_on": "label_on", "label_off": "label_off"}, widget=True),
        Combo=type("Combo", (), {"io_type": "COMBO", "Input": _ComboInput,
                                 "Output": type("Output", (_Output,), {"io_type": "COMBO"})}),
        Custom=lambda io_type: _type(io_type),
        **{name: _type(io_type) for name, io_type in (
            ("Image", "IMAGE"), ("Mask", "MASK"), ("Latent", "LATENT"), ("Vae", "VAE"), ("ClipVision", "CLIP_VISION"),
            ("Guider", "GUIDER"), ("Sampler", "SAMPLER"), ("Sigmas", "SIGMAS"), ("Noise", "NOISE"), ("Mesh", "MESH"),
            ("Model", "MODEL"))},
    )
    types_ns = type("Types", (), {"MESH": MESH} if with_mesh_type else {})
    latest = _module("comfy_api.latest", io=io, ui=_module("comfy_api.latest._ui"), ComfyExtension=ComfyExtension,
                     Types=types_ns)
    return {"comfy_api": _module("comfy_api", latest=latest), "comfy_api.latest": latest,
            "comfy_api.latest._io": io}


@contextlib.contextmanager
def file_3d(io: types.ModuleType):
    """Within the block, the stand-in schema module has the File3D type of ComfyUI 0.27+."""
    io.File3DAny = _type("FILE_3D")
    try:
        yield
    finally:
        del io.File3DAny


def install_api(with_mesh_type: bool = True) -> None:
    """Put the node-schema stand-ins into sys.modules (unless a real host is importable)."""
    for name, module in comfy_api_modules(with_mesh_type).items():
        sys.modules[name] = module


# ---------------------------------------------------------------- comfy.* (runtime)

class SD15:
    scale_factor = 0.18215
    latent_channels = 4
    latent_dimensions = 2
    taesd_decoder_name = "taesd_decoder"
    latent_rgb_factors = [[0.3512, 0.2297, 0.3227], [0.3250, 0.4974, 0.2350],
                          [-0.2829, 0.1762, 0.2721], [-0.2120, -0.2616, -0.7177]]
    latent_rgb_factors_bias = None

    def process_in(self, latent):
        return latent * self.scale_factor

    def process_out(self, latent):
        return latent / self.scale_factor


class ModelPatcher:
    def __init__(self, model, load_device, offload_device):
        self.model, self.load_device, self.offload_device = model, load_device, offload_device
        self.model_options = {"transformer_options": {}}

    def get_model_object(self, name):
        return getattr(self.model, name)


class ProgressBar:
    updates: list = []
    #: Called at every update when set (a test's probe of what happens at each step).
    hook = None

    def __init__(self, total):
        self.total = total

    def update_absolute(self, value, total=None, preview=None):
        ProgressBar.updates.append((value, total or self.total, preview))
        if ProgressBar.hook is not None:
            ProgressBar.hook()


class Previewer:
    """Latent2RGB-style preview of the first latent of a batch, as the host's previewers do."""

    shapes: list = []

    def decode_latent_to_preview_image(self, preview_format, x0):
        Previewer.shapes.append(tuple(x0.shape))
        return (preview_format, x0[:1].shape[-1] * 8, x0[:1].shape[-2] * 8)


class KSAMPLER:
    def __init__(self, sampler_function, extra_options=None, inpaint_options=None):
        self.sampler_function, self.extra_options = sampler_function, extra_options or {}

    def sample(self, model_wrap, sigmas, extra_args, callback, noise, latent_image=None, denoise_mask=None,
               disable_pbar=False):
        ms = model_wrap.inner_model.model_sampling
        max_denoise = math.isclose(float(ms.sigma_max), float(sigmas[0]), rel_tol=1e-5) or float(sigmas[0]) > float(ms.sigma_max)

        def model_k(x, sigma, **kw):  # the host's KSamplerX0Inpaint
            if denoise_mask is not None:
                kept = model_wrap.inner_model.scale_latent_inpaint(x=x, sigma=sigma, noise=noise, latent_image=latent_image)
                x = x * denoise_mask + kept * (1 - denoise_mask)
            out = model_wrap(x, sigma, model_options=kw.get("model_options", {}), seed=kw.get("seed"))
            return out if denoise_mask is None else out * denoise_mask + latent_image * (1 - denoise_mask)

        x = ms.noise_scaling(sigmas[0], noise, latent_image, max_denoise)
        total = len(sigmas) - 1
        k_callback = (lambda d: callback(d["i"], d["denoised"], d["x"], total)) if callback else None
        samples = self.sampler_function(model_k, x, sigmas, extra_args=extra_args, callback=k_callback,
                                        disable=disable_pbar, **self.extra_options)
        return ms.inverse_noise_scaling(sigmas[-1], samples)


def sample_euler_ancestral(model, x, sigmas, extra_args=None, callback=None, disable=None, eta=1.0):
    """Euler ancestral with the host's default noise: a generator seeded with extra_args['seed']."""
    extra_args = extra_args or {}
    generator = torch.Generator().manual_seed(int(extra_args.get("seed") or 0))
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        if callback:
            callback({"x": x, "i": i, "sigma": sigmas[i], "sigma_hat": sigmas[i], "denoised": denoised})
        sigma_up = min(float(sigmas[i + 1]), eta * float(sigmas[i + 1]) * 0.5)
        sigma_down = (float(sigmas[i + 1]) ** 2 - sigma_up**2) ** 0.5
        x = x + (x - denoised) / sigmas[i] * (sigma_down - sigmas[i])
        if sigmas[i + 1] > 0:
            x = x + torch.randn(x.shape, generator=generator) * sigma_up
    return x


def sample_euler(model, x, sigmas, extra_args=None, callback=None, disable=None):
    """Euler (Karras et al. 2022, algorithm 2 without churn), as the host's ``euler``."""
    extra_args = extra_args or {}
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        if callback:
            callback({"x": x, "i": i, "sigma": sigmas[i], "sigma_hat": sigmas[i], "denoised": denoised})
        x = x + (x - denoised) / sigmas[i] * (sigmas[i + 1] - sigmas[i])
    return x


def sample_dpmpp_2m(model, x, sigmas, extra_args=None, callback=None, disable=None):
    """DPM-Solver++(2M) (Lu et al. 2022), as the host's ``dpmpp_2m``."""
    extra_args = extra_args or {}
    s_in = x.new_ones([x.shape[0]])
    ends = (sigmas == 0).tolist()
    old_denoised = None
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        if callback:
            callback({"x": x, "i": i, "sigma": sigmas[i], "sigma_hat": sigmas[i], "denoised": denoised})
        if ends[i + 1]:
            x = denoised
        else:
            t, t_next = -sigmas[i].log(), -sigmas[i + 1].log()
            h = t_next - t
            if old_denoised is not None:
                r = (t - (-sigmas[i - 1].log())) / h
                denoised_d = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * old_denoised
            else:
                denoised_d = denoised
            x = (sigmas[i + 1] / sigmas[i]) * x - (-h).expm1() * denoised_d
        old_denoised = denoised
    return x


def sample_euler_cfg_pp(model, x, sigmas, extra_args=None, callback=None, disable=None):
    """Euler CFG++ (Chung et al. 2024), as the host's ``euler_cfg_pp``: the step direction
    comes from the unconditional prediction, read through a post-CFG function."""
    extra_args = dict(extra_args or {})
    captured = {}

    def post_cfg(args):
        captured["uncond"] = args["uncond_denoised"]
        return args["denoised"]

    options = dict(extra_args.get("model_options", {}))
    options["sampler_post_cfg_function"] = [*options.get("sampler_post_cfg_function", []), post_cfg]
    options["disable_cfg1_optimization"] = True
    extra_args["model_options"] = options
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        if callback:
            callback({"x": x, "i": i, "sigma": sigmas[i], "sigma_hat": sigmas[i], "denoised": denoised})
        d = (x - captured["uncond"]) / sigmas[i]
        x = denoised + d * sigmas[i + 1]
    return x


STAND_IN_SAMPLERS = {"euler_ancestral": sample_euler_ancestral, "euler": sample_euler, "dpmpp_2m": sample_dpmpp_2m,
                     "euler_cfg_pp": sample_euler_cfg_pp}


def prepare_mask(noise_mask, shape, device):
    """The host's mask preparation: to the latent's size, repeated over channels and batch."""
    mask = torch.nn.functional.interpolate(noise_mask.reshape(-1, 1, *noise_mask.shape[-2:]), size=shape[2:],
                                           mode="bilinear")
    mask = mask.repeat(1, shape[1], 1, 1)
    return mask.repeat((shape[0] + mask.shape[0] - 1) // mask.shape[0], 1, 1, 1)[:shape[0]].to(device)


def ddim_uniform(model_sampling, steps):
    sigmas = model_sampling.sigmas
    stride = max(len(sigmas) // steps, 1)
    chosen = [float(sigmas[x]) for x in range(1, len(sigmas), stride)]
    return torch.FloatTensor(chosen[::-1] + [0.0])


def karras(model_sampling, steps, rho=7.0):
    lo, hi = float(model_sampling.sigma_min), float(model_sampling.sigma_max)
    ramp = torch.linspace(0, 1, steps)
    sigmas = (hi ** (1 / rho) + ramp * (lo ** (1 / rho) - hi ** (1 / rho))) ** rho
    return torch.cat([sigmas, torch.zeros(1)])


SCHEDULERS = {"ddim_uniform": ddim_uniform, "karras": karras}


def make_folder_paths(base: Path) -> types.ModuleType:
    models_dir, output_dir, input_dir = base / "models", base / "output", base / "input"
    registry: dict = {}

    def add_model_folder_path(name, path, is_default=False):
        registry.setdefault(name, ([], set()))[0].append(path)

    def get_filename_list(name):
        folders, extensions = registry.get(name, ([], set()))
        return sorted(p.name for d in folders if Path(d).is_dir() for p in Path(d).iterdir()
                      if not extensions or p.suffix.lower() in extensions)

    def get_full_path_or_raise(name, filename):
        for folder in registry.get(name, ([], set()))[0]:
            if (Path(folder) / filename).is_file():
                return str(Path(folder) / filename)
        raise FileNotFoundError(f"Model in folder '{name}' with filename '{filename}' not found.")

    def get_full_path(name, filename):
        try:
            return get_full_path_or_raise(name, filename)
        except FileNotFoundError:
            return None

    def get_save_image_path(prefix, out_dir, width=0, height=0):
        """As the host: the prefix may name subfolders but never leave ``out_dir``; the counter
        continues after the highest number already saved under that name."""
        subfolder = os.path.dirname(os.path.normpath(prefix))
        name = os.path.basename(os.path.normpath(prefix))
        folder = os.path.abspath(os.path.join(out_dir, subfolder))
        if os.path.commonpath((os.path.abspath(out_dir), folder)) != os.path.abspath(out_dir):
            raise Exception(f"Saving outside the output folder is not allowed: {folder}")
        os.makedirs(folder, exist_ok=True)
        numbers = []
        for existing in os.listdir(folder):
            if existing.startswith(name + "_"):
                digits = existing[len(name) + 1:].split("_")[0]
                if digits.isdigit():
                    numbers.append(int(digits))
        return folder, name, max(numbers, default=0) + 1, subfolder, prefix

    return _module(
        "folder_paths", models_dir=str(models_dir), folder_names_and_paths=registry,
        add_model_folder_path=add_model_folder_path, get_filename_list=get_filename_list,
        get_full_path_or_raise=get_full_path_or_raise, get_full_path=get_full_path, get_output_directory=lambda: str(output_dir),
        get_input_directory=lambda: str(input_dir), get_save_image_path=get_save_image_path,
        get_folder_paths=lambda name: list(registry.get(name, ([], set()))[0]), filename_list_cache={},
    )


def _free_memory(device) -> int:
    """As the host: what the system reports free on the device (a large figure where it cannot say)."""
    from syncdreamer_core.memory import free_memory

    free = free_memory(device)
    return 64 * 2**30 if free is None else free


def install(tmp_path: Path, device: torch.device | None = None, with_mesh_type: bool = True):
    """Put every stand-in into sys.modules; returns (model_management, folder_paths).
    ``device``: the torch device the host computes on (default: the CPU)."""
    install_api(with_mesh_type)
    state = {"interrupt_after": None, "checks": 0}

    def throw_exception_if_processing_interrupted():
        state["checks"] += 1
        if state["interrupt_after"] is not None and state["checks"] > state["interrupt_after"]:
            raise Interrupted("processing interrupted")

    device = torch.device("cpu") if device is None else torch.device(device)

    def load_models_gpu(models, **kw):  # as the host: each model to its load device
        for patcher in models:
            patcher.model.to(patcher.load_device)

    mm = _module(
        "comfy.model_management", get_torch_device=lambda: device,
        unet_offload_device=lambda: torch.device("cpu"), load_models_gpu=load_models_gpu,
        load_model_gpu=lambda model: load_models_gpu([model]), soft_empty_cache=lambda *a, **k: None,
        throw_exception_if_processing_interrupted=throw_exception_if_processing_interrupted,
        unet_dtype=lambda **kw: torch.float32, intermediate_device=lambda: torch.device("cpu"), state=state,
        get_free_memory=lambda dev=None, torch_free_too=False: _free_memory(dev or device),
    )

    def calculate_sigmas(model_sampling, scheduler, steps):
        return SCHEDULERS[scheduler](model_sampling, steps)

    samplers = _module(
        "comfy.samplers", SAMPLER_NAMES=[*STAND_IN_SAMPLERS, "ddim"], SCHEDULER_NAMES=list(SCHEDULERS),
        KSAMPLER=KSAMPLER, calculate_sigmas=calculate_sigmas,
        sampler_object=lambda name: KSAMPLER(STAND_IN_SAMPLERS.get(name, sample_euler_ancestral)),
        KSampler=type("KSampler", (), {"DISCARD_PENULTIMATE_SIGMA_SAMPLERS": set()}),
    )

    def no_comfy_vae(sd=None, **kw):
        raise RuntimeError("stand-in: no ComfyUI VAE class")

    (tmp_path / "input").mkdir(parents=True, exist_ok=True)
    folder_paths = make_folder_paths(tmp_path)
    comfy = _module("comfy")
    modules = {
        "comfy": comfy,
        "comfy.model_management": mm,
        "comfy.samplers": samplers,
        "comfy.utils": _module("comfy.utils", ProgressBar=ProgressBar),
        "comfy.sampler_helpers": _module("comfy.sampler_helpers", prepare_mask=prepare_mask),
        "comfy.model_patcher": _module("comfy.model_patcher", ModelPatcher=ModelPatcher),
        "comfy.latent_formats": _module("comfy.latent_formats", SD15=SD15),
        "comfy.sd": _module("comfy.sd", VAE=no_comfy_vae),
        "comfy.clip_vision": _module("comfy.clip_vision", load_clipvision_from_sd=lambda sd, **kw: None),
        "latent_preview": _module("latent_preview", get_previewer=lambda device, latent_format: Previewer()),
        "folder_paths": folder_paths,
    }
    for name, module in modules.items():
        sys.modules[name] = module
        if "." in name and name.startswith("comfy."):
            setattr(comfy, name.split(".", 1)[1], module)
    return mm, folder_paths
