"""ComfyUI-SyncDreamer: single image -> 16 multiview-consistent views -> textured mesh."""

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.append(_HERE)  # makes `syncdreamer_core` importable; appended so nothing is shadowed


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
    for source, name in (("teapot.png", "syncdreamer_teapot.png"), ("sketch_mug.png", "syncdreamer_sketch_mug.png")):
        destination = os.path.join(target, name)
        if os.path.isdir(target) and not os.path.exists(destination):
            try:
                shutil.copyfile(os.path.join(examples, source), destination)
            except OSError:
                pass


_register_model_folder()
_provide_example_inputs()

from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS  # noqa: E402

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
