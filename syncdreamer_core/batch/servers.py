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

    def __init__(self, server: str, timeout: float = 3600, max_file_mb: float = 2048, file_seconds: float = 600):
        self.server = server.replace("http://", "").rstrip("/")
        self.timeout = timeout
        self.max_file_bytes, self.file_seconds = int(max_file_mb * 2**20), file_seconds

    def run(self, item_path: str, workflow: dict, image_node: str, folder: str) -> dict:
        from ..comfy_http import ComfyClient, ComfyError, ServerAnswerError, output_files, run_failure

        client = ComfyClient(self.server, timeout=self.timeout, max_file_bytes=self.max_file_bytes,
                             file_seconds=self.file_seconds)
        started = time.perf_counter()
        try:
            uploaded = client.upload_image(Path(item_path))
            graph = copy.deepcopy(workflow)
            graph[image_node]["inputs"]["image"] = uploaded
            prompt_id = client.submit(graph)
        except ServerAnswerError as error:
            raise ItemFailed(str(error)) from None
        except (OSError, ConnectionError) as error:
            raise ServerDown(f"{self.server}: {error}") from None
        except ComfyError as error:
            raise ItemFailed(str(error)) from None
        try:
            entry = client.wait(prompt_id)
            failure = run_failure(entry)
            if failure is not None:
                raise ItemFailed(failure)
            files = output_files(entry)
            for file in files:
                client.download(file, Path(folder))
        except ServerAnswerError as error:
            raise ItemFailed(f"{self.server}: {error}") from None
        except (OSError, ConnectionError) as error:
            raise ServerDown(f"{self.server} stopped while running the item: {error}") from None
        renamed = {f.local_name: str(f.ref["filename"]) for f in files
                   if f.local_name != f"{f.node}-{f.ref['filename']}"}
        return {"server": self.server, "outputs": [f.local_name for f in files], "renamed": renamed,
                "seconds": round(time.perf_counter() - started, 3), "prompt_id": prompt_id}


def run_on_servers(items: list[BatchItem], servers: list[str], workflow_path: Path, image_node: str, output: Path,
                   retry_failed: bool = False, address: str | None = None, on_item=None,
                   max_file_mb: float = 2048, file_seconds: float = 600) -> BatchReport:
    """Every item through ``workflow_path`` on ``servers``; finished items are skipped on a rerun.
    Items left when no server answers any more are reported as not run (``report.stopped``).
    Each downloaded output file is capped at ``max_file_mb`` and ``file_seconds``."""
    from ..comfy_http import ComfyClient, check_image_node, load_api_workflow
    from ..outputs import OutputLock
    from .engine import previous_failures

    workflow = load_api_workflow(workflow_path)
    check_image_node(workflow, image_node, str(workflow_path))
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    with OutputLock(output):
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
        if pending:
            answering = []
            for server in servers:
                problem = ComfyClient(server).alive()
                if problem:
                    report.last_server_error = problem
                    print(f"[server down] {problem}", file=sys.stderr, flush=True)
                else:
                    answering.append(server)
            if answering:
                _run(pending, answering, workflow, image_node, output, address, report, on_item,
                     (3600, max_file_mb, file_seconds))
            else:
                _not_run(pending, report, servers)
        report.write(output)
    return report


def _run(pending, servers, workflow, image_node, output, address, report, on_item, limits) -> None:
    import ray

    from .cluster import connect

    started_ray = connect(address)
    try:
        Worker = ray.remote(num_cpus=0, max_restarts=0)(ServerWorker)
        workers = {server: Worker.remote(server, *limits) for server in servers}
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
                    _not_run(queue, report, servers)
                    break
                done, _ = ray.wait(list(running), num_returns=1)
                server, item, key = running.pop(done[0])
                line = {"key": key, "input": item.path}
                try:
                    result = ray.get(done[0])
                except (ray.exceptions.RayTaskError, ray.exceptions.RayActorError) as error:
                    cause = getattr(error, "cause", None)
                    if isinstance(cause, ServerDown) or not isinstance(error, ray.exceptions.RayTaskError):
                        report.last_server_error = str(cause or error).splitlines()[0]
                        print(f"[server down] {report.last_server_error}; {item.path} goes to another server",
                              file=sys.stderr, flush=True)
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
        if started_ray:
            ray.shutdown()


def _not_run(queue, report: BatchReport, servers: list[str]) -> None:
    """No server answers any more: the items left are reported (not recorded as failed: a
    rerun does them), with the last server error, in one line on stderr."""
    reason = f"not run: no ComfyUI server answers ({', '.join(servers)}); last error: {report.last_server_error}"
    for item, key in queue:
        report.add({"key": key, "input": item.path, "status": "not-run", "message": reason})
    report.stopped = reason
    print(f"error: {len(queue)} item(s) {reason}. Start a server and run the same command again.", file=sys.stderr,
          flush=True)


def _record(folder: Path, line: dict, item: BatchItem, status: str, message: str | None = None,
            result: dict | None = None) -> dict:
    record = {**line, "status": status, "input_sha256": item.hash_content(), "versions": versions(),
              "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    if message:
        record["message"] = message
    if result:
        record.update(outputs=result["outputs"], server=result["server"], times={"comfyui": result["seconds"]},
                      prompt_id=result["prompt_id"])
        if result.get("renamed"):
            record["renamed_from_server"] = result["renamed"]
    text = json.dumps(record, indent=1) + "\n"
    atomic_write(folder / (RECORD if status == "done" else FAILED), lambda target: target.write_text(text))
    if status == "done" and (folder / FAILED).exists():
        (folder / FAILED).unlink()
    return {k: record.get(k) for k in ("key", "status", "input", "message", "outputs", "times", "server")}
