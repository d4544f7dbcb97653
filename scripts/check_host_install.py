"""What installing the pack's requirements would change in an existing ComfyUI environment.

    python scripts/check_host_install.py /path/to/ComfyUI/.venv/bin/python [more...]
    python scripts/check_host_install.py /path/to/ComfyUI     # its venv or .venv

Runs ``pip install --dry-run --report`` of requirements.txt with each host's Python and
lists what pip would install; exit code 1 when it would replace the host's torch,
torchvision, torchaudio, numpy or Pillow (the Comfy Registry asks packs not to fight the
host's pins).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTECTED = {"torch", "torchvision", "torchaudio", "numpy", "pillow"}


def host_python(given: str) -> str:
    """A Python executable, or a ComfyUI folder whose venv holds one."""
    path = Path(given)
    if path.is_dir():
        for venv in ("venv", ".venv"):
            for python in (path / venv / "bin" / "python", path / venv / "Scripts" / "python.exe"):
                if python.is_file():
                    return str(python)
        raise SystemExit(f"{given}: a folder without venv/ or .venv/; pass the host's Python executable")
    if not path.is_file():
        raise SystemExit(f"{given}: no such Python executable")
    return given


def planned(python: str) -> list[tuple[str, str]]:
    result = subprocess.run([python, "-m", "pip", "install", "--dry-run", "--quiet", "--report", "-", "-r",
                             str(ROOT / "requirements.txt")], capture_output=True, text=True, timeout=900)
    if result.returncode:
        raise SystemExit(f"{python}: pip failed: {result.stderr.strip()[-500:]}")
    report = json.loads(result.stdout[result.stdout.index("{"):])
    return [(item["metadata"]["name"], item["metadata"]["version"]) for item in report.get("install", [])]


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    clashes = 0
    for python in map(host_python, argv):
        installs = planned(python)
        touched = [f"{name} {version}" for name, version in installs if name.lower() in PROTECTED]
        clashes += len(touched)
        print(f"{python}: would install {len(installs)} packages: "
              + ", ".join(f"{name} {version}" for name, version in installs))
        print(f"  host pins changed: {', '.join(touched) if touched else 'none'}")
    return 1 if clashes else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
