"""Run a SyncDreamer workflow on a running ComfyUI through its HTTP API.

    python scripts/comfy_client.py --workflow image_to_3d --image my_object.png \
        --set 13.elevation=20 --out output/my_object

Submits an API-format workflow (a shipped one by name, or a path) to POST /prompt,
follows its progress over the websocket (/ws), and downloads everything it produced
(the 16 views, grids, the mesh) from /view into --out. ``--set NODE.INPUT=VALUE``
changes an input (VALUE is read as JSON when it parses, else as text); ``--image
[NODE=]PATH`` uploads a file and feeds it to LoadImage node NODE (or to all of them).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from syncdreamer_core.comfy_http import ComfyClient, ComfyError, run_failure  # noqa: E402

__all__ = ["ComfyClient", "ComfyError", "load_workflow", "main"]


def load_workflow(name_or_path: str) -> dict:
    path = Path(name_or_path)
    if not path.is_file():
        path = ROOT / "example_workflows" / "api" / f"{name_or_path}.json"
    if not path.is_file():
        raise FileNotFoundError(f"no API workflow {name_or_path!r} (a path, or one of "
                                f"{sorted(p.stem for p in (ROOT / 'example_workflows' / 'api').glob('*.json'))})")
    return json.loads(path.read_text())


def apply_settings(workflow: dict, settings: list[str]) -> dict:
    for setting in settings:
        target, _, raw = setting.partition("=")
        node, _, name = target.partition(".")
        if node not in workflow or not name or not _:
            raise ValueError(f"--set needs NODE.INPUT=VALUE with an existing node id, got {setting!r}")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        workflow[node]["inputs"][name] = value
    return workflow


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server", default="127.0.0.1:8188")
    parser.add_argument("--workflow", default="image_to_3d", help="shipped workflow name or API-format JSON path")
    parser.add_argument("--image", action="append", default=[], metavar="[NODE=]PATH",
                        help="upload an image and use it in LoadImage node NODE (default: every LoadImage)")
    parser.add_argument("--set", action="append", default=[], metavar="NODE.INPUT=VALUE")
    parser.add_argument("--out", default="output/comfy_client")
    parser.add_argument("--timeout", type=float, default=3600.0)
    args = parser.parse_args(argv)

    client = ComfyClient(args.server, args.timeout)
    workflow = apply_settings(load_workflow(args.workflow), args.set)
    for image in args.image:
        node_id, _, path = image.rpartition("=") if "=" in image else ("", "", image)
        name = client.upload_image(path)
        for key, node in workflow.items():
            if node["class_type"] == "LoadImage" and node_id in ("", key):
                node["inputs"]["image"] = name
    prompt_id = client.submit(workflow)
    print(f"queued {prompt_id}", flush=True)

    def show(kind, data):
        if kind == "progress":
            print(f"  node {data.get('node')}: {data.get('value')}/{data.get('max')}", flush=True)
        elif kind == "executing" and data.get("node"):
            print(f"running node {data['node']}", flush=True)

    entry = client.wait(prompt_id, show)
    failure = run_failure(entry)
    if failure is not None:
        print(f"failed: {failure}", file=sys.stderr)
        return 1
    for path in client.download_outputs(entry, Path(args.out)):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
