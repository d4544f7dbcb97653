"""What installing the pack's requirements would change in an existing ComfyUI environment.

    python scripts/check_host_install.py /path/to/ComfyUI/.venv/bin/python [more pythons...]

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
    for python in argv:
        installs = planned(python)
        touched = [f"{name} {version}" for name, version in installs if name.lower() in PROTECTED]
        clashes += len(touched)
        print(f"{python}: would install {len(installs)} packages: "
              + ", ".join(f"{name} {version}" for name, version in installs))
        print(f"  host pins changed: {', '.join(touched) if touched else 'none'}")
    return 1 if clashes else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
