"""The batch over running ComfyUI servers: any API-format workflow, fed one input image per
item, on a pool of servers (one Ray actor per server, one prompt in flight on each).

Each item's image is uploaded to its server and set on the LoadImage node the user
names; the prompt is queued, its progress followed over the websocket, and every output
file downloaded into the item's keyed folder (written whole, then renamed), the record
last. A server that stops answering is taken out of the pool and its item goes to
another; an item the workflow itself refuses is recorded with ComfyUI's message.
"""

from __future__ import annotations

import copy
import hashlib
import json
import sys
import time
from pathlib import Path

from ..outputs import atomic_write
from .items import BatchItem
from .report import BatchReport
from .work import FAILED, RECORD, versions


class ServerDown(Exception):
    """The server did not answer: the item goes to another server."""


class ItemFailed(Exception):
    """The workflow ran and failed on this item (ComfyUI's message)."""


def workflow_key(item: BatchItem, workflow: dict, image_node: str) -> str:
    text = json.dumps({"workflow": workflow, "image_node": image_node}, sort_keys=True)
    return f"{item.name()}-{item.hash_content()[:12]}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"


class ServerWorker:
    """One ComfyUI server (a Ray actor): runs one item at a time on it."""

    def __init__(self, server: str, timeout: float = 3600):
        self.server = server.replace("http://", "").rstrip("/")
        self.timeout = timeout

    def run(self, item_path: str, workflow: dict, image_node: str, folder: str) -> dict:
        from ..comfy_http import ComfyClient, ComfyError

        client = ComfyClient(self.server, timeout=self.timeout)
        started = time.perf_counter()
        try:
            uploaded = client.upload_image(Path(item_path))
            graph = copy.deepcopy(workflow)
            graph[image_node]["inputs"]["image"] = uploaded
            prompt_id = client.submit(graph)
        except (OSError, ConnectionError) as error:
            raise ServerDown(f"{self.server}: {error}") from None
        except ComfyError as error:
            raise ItemFailed(str(error)) from None
        try:
            entry = client.wait(prompt_id)
        except (OSError, ConnectionError) as error:
            raise ServerDown(f"{self.server} stopped while running the item: {error}") from None
        if entry["status"].get("status_str") != "success":
            messages = [m[1].get("exception_message", "") for m in entry["status"].get("messages", [])
                        if m[0] == "execution_error"]
            raise ItemFailed("; ".join(messages) or f"the workflow ended with status {entry['status']}")
        files = []
        target = Path(folder)
        for node_id, output in entry.get("outputs", {}).items():
            for kind in ("images", "gifs", "3d", "audio", "video"):
                for ref in output.get(kind, []) or []:
                    if not isinstance(ref, dict) or "filename" not in ref:
                        continue
                    name = f"{node_id}-{ref['filename']}"
                    try:
                        data = client.fetch(ref)
                    except (OSError, ConnectionError) as error:
                        raise ServerDown(f"{self.server}: downloading {ref['filename']}: {error}") from None
                    atomic_write(target / name, lambda path, data=data: path.write_bytes(data))
                    files.append(name)
        return {"server": self.server, "outputs": files, "seconds": round(time.perf_counter() - started, 3),
                "prompt_id": prompt_id}


def run_on_servers(items: list[BatchItem], servers: list[str], workflow_path: Path, image_node: str, output: Path,
                   retry_failed: bool = False, address: str | None = None, on_item=None) -> BatchReport:
    """Every item through ``workflow_path`` on ``servers``; finished items are skipped on a rerun."""
    import ray

    from .engine import EngineOptions, connect

    workflow = json.loads(Path(workflow_path).read_text())
    if image_node not in workflow or "image" not in workflow[image_node].get("inputs", {}):
        raise ValueError(f"--image-node {image_node} is not a LoadImage node of {workflow_path} (nodes: "
                         f"{', '.join(sorted(workflow)[:12])})")
    from .engine import previous_failures

    report, pending = BatchReport(), []
    failed_inputs = previous_failures(output) if retry_failed else set()
    for item in items:
        key = workflow_key(item, workflow, image_node)
        folder = output / key
        line = {"key": key, "input": item.path}
        if (folder / RECORD).is_file():
            report.add({**line, "status": "skipped"})
        elif (folder / FAILED).is_file() and not retry_failed:
            report.add({**line, "status": "failed-before",
                        "message": json.loads((folder / FAILED).read_text()).get("message")})
        elif item.problem:
            report.add(_record(folder, line, item, "failed", message=item.problem))
        elif not retry_failed or (folder / FAILED).is_file() or item.path in failed_inputs:
            pending.append((item, key))
    if not pending:
        report.write(output)
        return report
    started_ray = connect(EngineOptions(address=address))
    try:
        Worker = ray.remote(num_cpus=0, max_restarts=0)(ServerWorker)
        workers = {server: Worker.remote(server) for server in servers}
        idle, running = list(workers), {}
        queue = list(pending)
        try:
            while queue or running:
                while queue and idle:
                    server = idle.pop(0)
                    item, key = queue.pop(0)
                    future = workers[server].run.remote(item.path, workflow, image_node, str(output / key))
                    running[future] = (server, item, key)
                if not running:
                    raise RuntimeError("every ComfyUI server stopped answering: "
                                       + ", ".join(servers) + "; the remaining items are not done")
                done, _ = ray.wait(list(running), num_returns=1)
                server, item, key = running.pop(done[0])
                line = {"key": key, "input": item.path}
                try:
                    result = ray.get(done[0])
                except ray.exceptions.RayTaskError as error:
                    cause = error.cause
                    if isinstance(cause, ServerDown):
                        print(f"[server down] {cause}; {item.path} goes to another server", file=sys.stderr)
                        queue.insert(0, (item, key))
                        continue  # the server leaves the pool
                    line = _record(output / key, line, item, "failed", message=str(cause))
                else:
                    line = _record(output / key, line, item, "done", result=result)
                idle.append(server)
                report.add(line)
                if on_item is not None:
                    on_item(line)
        except KeyboardInterrupt:
            report.interrupted = True
    finally:
        report.write(output)
        if started_ray:
            ray.shutdown()
    return report


def _record(folder: Path, line: dict, item: BatchItem, status: str, message: str | None = None,
            result: dict | None = None) -> dict:
    record = {**line, "status": status, "input_sha256": item.hash_content(), "versions": versions(),
              "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    if message:
        record["message"] = message
    if result:
        record.update(outputs=result["outputs"], server=result["server"], times={"comfyui": result["seconds"]},
                      prompt_id=result["prompt_id"])
    text = json.dumps(record, indent=1) + "\n"
    atomic_write(folder / (RECORD if status == "done" else FAILED), lambda target: target.write_text(text))
    if status == "done" and (folder / FAILED).exists():
        (folder / FAILED).unlink()
    return {k: record.get(k) for k in ("key", "status", "input", "message", "outputs", "times", "server")}
