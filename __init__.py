"""ComfyUI-SyncDreamer: single image -> 16 multiview-consistent views -> textured mesh.

ComfyUI loads the nodes through ``comfy_entrypoint`` (its node schema, ``comfy_api.latest``).
Importing the pack is cheap: the model code, diffusers, transformers and trimesh are
imported only when a node first runs.
"""

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.append(_HERE)  # makes `syncdreamer_core` importable; appended so nothing is shadowed

#: Node help pages (web/docs/<node>.md) and their pictures, served by ComfyUI.
WEB_DIRECTORY = "./web"
#: Example inputs the shipped workflows name, copied into ComfyUI's input folder.
EXAMPLE_INPUTS = {"teapot.png": "syncdreamer_teapot.png", "sketch_mug.png": "syncdreamer_sketch_mug.png",
                  "chicken-views.png": "syncdreamer_chicken_views.png"}


def _register_model_folder() -> None:
    try:
        import folder_paths
    except ImportError:  # imported outside ComfyUI (tests, tools)
        return
    folder = os.path.join(folder_paths.models_dir, "syncdreamer")
    os.makedirs(folder, exist_ok=True)
    folder_paths.add_model_folder_path("syncdreamer", folder)
    known = folder_paths.folder_names_and_paths.get("syncdreamer")
    if known is not None:
        folder_paths.folder_names_and_paths["syncdreamer"] = (known[0], {".ckpt", ".safetensors", ".pt", ".pth"})


def _provide_example_inputs() -> None:
    """Copy the bundled example inputs into ComfyUI's input folder, so the shipped
    workflows run unchanged (existing files are never overwritten)."""
    try:
        import shutil

        import folder_paths

        target = folder_paths.get_input_directory()
    except Exception:  # noqa: BLE001 - outside ComfyUI, or no input folder
        return
    examples = os.path.join(_HERE, "syncdreamer_core", "examples")
    for source, name in EXAMPLE_INPUTS.items():
        destination = os.path.join(target, name)
        if os.path.isdir(target) and not os.path.exists(destination):
            try:
                shutil.copyfile(os.path.join(examples, source), destination)
            except OSError:
                pass


_register_model_folder()
_provide_example_inputs()

try:
    import comfy_api.latest  # noqa: F401 - ComfyUI's node schema
except ImportError:  # imported outside ComfyUI (tools, test collection): there are no nodes to offer
    comfy_entrypoint = None
else:
    from .nodes import comfy_entrypoint
    from .nodes.checkpoint_download import install_routes
    from .nodes.templates import install_template_filter

    install_routes()
    install_template_filter(os.path.basename(_HERE), os.path.join(_HERE, "example_workflows"))

__all__ = ["WEB_DIRECTORY", "comfy_entrypoint"]
