"""Resolve the pack's requirements for the machines users have, from wheels only, and
print the matrix for the README.

    python scripts/check_install_matrix.py [--python 3.10 3.11 3.12 3.13] [--json out.json]

Each cell is ``uv pip compile`` of requirements.txt (and, in its own column,
requirements-batch.txt) for one target platform and Python version with
``--only-binary :all:``: a cell resolves only when every package has a wheel for that
machine (pip's own ``--platform`` evaluates environment markers for the running machine,
which is wrong for another one; uv evaluates them for the target). Needs ``uv`` (pip
install uv) and access to the package index. Exit code 1 when a cell does not resolve.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PLATFORMS = {
    "Linux x86_64": "x86_64-unknown-linux-gnu",
    "Linux aarch64": "aarch64-unknown-linux-gnu",
    "macOS arm64": "aarch64-apple-darwin",
    "Windows amd64": "x86_64-pc-windows-msvc",
}
SHOWN = ("torch", "numpy", "embreex", "ray")


def resolve(files: list[Path], platform: str, python: str) -> dict:
    command = [shutil.which("uv") or "uv", "pip", "compile", *map(str, files), "--python-platform", platform,
               "--python-version", python, "--only-binary", ":all:", "--no-header", "--no-annotate", "-q"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    if result.returncode:
        lines = [line.strip() for line in result.stderr.splitlines() if line.strip()]
        reason = next((line for line in lines if "Because" in line or "because" in line), lines[-1] if lines else "failed")
        return {"ok": False, "reason": reason[:200]}
    pins = dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", result.stdout, re.M))
    pins = {name.lower(): version for name, version in pins.items()}
    return {"ok": True, "packages": len(pins), **{name: pins.get(name) for name in SHOWN}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--python", nargs="+", default=["3.10", "3.11", "3.12", "3.13"])
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args(argv)
    if not shutil.which("uv"):
        print("needs uv: pip install uv", file=sys.stderr)
        return 2
    rows, failed = [], 0
    for name, platform in PLATFORMS.items():
        for python in args.python:
            pack = resolve([ROOT / "requirements.txt"], platform, python)
            batch = resolve([ROOT / "requirements.txt", ROOT / "requirements-batch.txt"], platform, python)
            failed += (not pack["ok"]) + (not batch["ok"])
            rows.append({"platform": name, "python": python, "pack": pack, "batch": batch})
            print(f"{name:14s} {python}: pack {'ok' if pack['ok'] else 'NO'}, batch {'ok' if batch['ok'] else 'NO'}",
                  file=sys.stderr, flush=True)
    print("| machine | Python | requirements.txt | + requirements-batch.txt | torch | numpy | embreex | ray |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for row in rows:
        pack, batch = row["pack"], row["batch"]
        cell = lambda r: "resolves" if r["ok"] else f"NO: {r['reason']}"  # noqa: E731
        print(f"| {row['platform']} | {row['python']} | {cell(pack)} | {cell(batch)} | {pack.get('torch') or '-'} | "
              f"{pack.get('numpy') or '-'} | {pack.get('embreex') or 'not needed'} | {batch.get('ray') or '-'} |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
