"""The mesh file formats the pack writes (``export``), named where a light import can see them,
and what every file written must be: finite."""

from pathlib import Path

import numpy as np

MESH_FORMATS = ("glb", "obj", "ply", "stl", "3mf")
#: Formats for printing: a solid in millimetres at the size asked for.
PRINT_FORMATS = ("stl", "3mf")
#: How a print size is measured.
SIZE_OF = ("height", "longest side")


class ExportError(ValueError):
    """A mesh that cannot be written where or as asked."""


def require_finite(path, **arrays) -> None:
    """No NaN or infinity reaches a file: slicers and viewers reject it, or worse, read it."""
    for what, array in arrays.items():
        if array is None:
            continue
        values = np.asarray(array, np.float64).reshape(len(array), -1)
        bad = int((~np.isfinite(values)).any(1).sum())
        if bad:
            raise ExportError(f"not writing {Path(path).name}: {bad} of its {len(array)} {what} are NaN or infinite")
