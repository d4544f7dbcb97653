"""A client of ComfyUI's HTTP API (no ComfyUI import: it talks to a running server):
queue an API-format workflow (POST /prompt), upload inputs, follow the progress on the
websocket (/ws), read /history and download the outputs (/view).

A server is not trusted: every answer is size-capped and checked for shape, every file
name it reports becomes a plain base name inside the destination folder, and every
download is capped in bytes and in time, so a broken or hostile server can fail an item
but never write outside the folder, fill the disk or hang the caller.
"""

from __future__ import annotations

import json
import re
import time
import unicodedata
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

#: Largest JSON answer read from a server (a /history entry is a few kB).
MAX_JSON_BYTES = 32 * 2**20
#: Longest wait for a whole JSON answer (seconds).
JSON_SECONDS = 120.0
#: Default caps on one downloaded output file.
MAX_FILE_BYTES = 2 * 2**30
FILE_SECONDS = 600.0
#: Output kinds a node's entry in /history lists files under.
OUTPUT_KINDS = ("images", "gifs", "3d", "audio", "video")
#: Longest local file name made from a server's name (bytes; file systems allow 255).
MAX_LOCAL_NAME = 120
_WINDOWS_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(1, 10)), *(f"lpt{i}" for i in range(1, 10))}


class ComfyError(RuntimeError):
    """The server answered but refused the request (e.g. an invalid prompt)."""


class ServerAnswerError(ComfyError):
    """The server's answer is malformed, too large, too slow, or names an unusable file."""


class WorkflowFileError(ValueError):
    """A workflow file that cannot be run as an API-format workflow, with what to do."""


# ---------------------------------------------------------------- names from a server

def safe_base_name(name: object, max_bytes: int = MAX_LOCAL_NAME) -> str | None:
    """The last path component of ``name`` as a plain file name (no separators, no ``..``,
    no drive letter, no control characters, at most ``max_bytes``), or None when nothing
    usable is left (``""``, ``".."``, ``"/"``, a name that is only dots or spaces)."""
    if not isinstance(name, str):
        return None
    text = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C")  # control, format, unassigned
    text = re.split(r"[/\\]", text)[-1]
    text = re.sub(r"^[A-Za-z]:", "", text)  # a drive letter, "C:evil"
    text = text.replace(":", "_").strip(" .")
    if not text or set(text) <= {"."}:
        return None
    if text.split(".")[0].lower() in _WINDOWS_RESERVED:
        text = "_" + text
    encoded = text.encode()
    if len(encoded) > max_bytes:
        stem, dot, suffix = text.rpartition(".")
        suffix = f".{suffix}" if dot and 0 < len(suffix.encode()) <= 16 else ""
        keep = max_bytes - len(suffix.encode())
        text = text[: len(text) - len(suffix)].encode()[:keep].decode(errors="ignore").rstrip(" .") + suffix
    return text or None


@dataclass(frozen=True)
class OutputFile:
    """One file a prompt produced, as /history lists it, and the local name it gets."""

    node: str
    ref: dict
    local_name: str


def run_failure(entry: dict) -> str | None:
    """None when a /history entry ran to success, else why not: the nodes' error messages,
    or the status it ended with."""
    status = entry.get("status", {}) if isinstance(entry, dict) else {}
    if not isinstance(status, dict):
        status = {"status_str": status}
    if status.get("status_str") == "success":
        return None
    messages = status.get("messages", [])
    errors = [m[1].get("exception_message", "") for m in messages if isinstance(messages, list)
              and isinstance(m, list) and len(m) == 2 and m[0] == "execution_error" and isinstance(m[1], dict)]
    return "; ".join(map(str, errors)) or f"the workflow ended with status {str(status)[:200]}"


def output_files(entry: dict) -> list[OutputFile]:
    """Every file a /history entry lists, each with a unique, safe local name
    ``<node>-<base name>`` (duplicates numbered). Raises ServerAnswerError for a
    malformed entry or a name with nothing usable in it."""
    outputs = entry.get("outputs", {}) if isinstance(entry, dict) else None
    if not isinstance(outputs, dict):
        raise ServerAnswerError(f"its /history entry has no 'outputs' object (got {type(outputs).__name__})")
    files, taken = [], set()
    for node_id, output in outputs.items():
        if not isinstance(output, dict):
            continue
        node = safe_base_name(str(node_id), 24) or "node"
        for kind in OUTPUT_KINDS:
            refs = output.get(kind) or []
            if not isinstance(refs, list):
                continue
            for ref in refs:
                if not isinstance(ref, dict) or "filename" not in ref:
                    continue
                base = safe_base_name(ref["filename"])
                if base is None:
                    raise ServerAnswerError(f"node {node_id} names an output file {str(ref['filename'])[:80]!r}, "
                                            "which is not a usable file name; it was refused")
                files.append(OutputFile(str(node_id), ref, _unique(f"{node}-{base}", taken)))
    return files


def _unique(name: str, taken: set[str]) -> str:
    stem, dot, suffix = name.rpartition(".")
    if not dot:
        stem, suffix = name, ""
    candidate, number = name, 1
    while candidate.lower() in taken:
        number += 1
        candidate = f"{stem}-{number}{dot}{suffix}"
    taken.add(candidate.lower())
    return candidate


# ---------------------------------------------------------------- API workflows

def load_api_workflow(path: str | Path) -> dict:
    """An API-format workflow (``{node id: {"class_type", "inputs"}}``) from ``path``,
    with a message naming the file and the fix for every other kind of file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise WorkflowFileError(f"the workflow {path} does not exist") from None
    except IsADirectoryError:
        raise WorkflowFileError(f"the workflow {path} is a folder; give an API-format .json file") from None
    except UnicodeDecodeError:
        raise WorkflowFileError(f"the workflow {path} is not a text file (not UTF-8): give the .json file that "
                                "ComfyUI's Export (API) writes") from None
    except OSError as error:
        raise WorkflowFileError(f"cannot read the workflow {path}: {error.strerror or error}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise WorkflowFileError(f"the workflow {path} is not JSON: {error.msg} at line {error.lineno} column "
                                f"{error.colno}") from None
    if isinstance(data, dict) and isinstance(data.get("nodes"), list) and "links" in data:
        raise WorkflowFileError(
            f"{path} is a UI workflow (what ComfyUI saves and loads), not the API format the server runs: open it "
            "in ComfyUI and save it with Workflow -> Export (API)")
    if not isinstance(data, dict) or not data:
        raise WorkflowFileError(f"{path} holds a JSON {type(data).__name__}, not an API-format workflow (an object "
                                'of node id -> {"class_type": ..., "inputs": {...}}, as Workflow -> Export (API) writes)')
    bad = [str(k) for k, v in data.items() if not isinstance(v, dict) or not isinstance(v.get("class_type"), str)
           or not isinstance(v.get("inputs", {}), dict)]
    if bad:
        raise WorkflowFileError(f"{path} is not an API-format workflow: node(s) {', '.join(bad[:6])} have no "
                                "class_type/inputs (export the workflow with Workflow -> Export (API))")
    return data


def image_nodes(workflow: dict) -> list[str]:
    """The ids of the nodes that load an input image (LoadImage and its kin)."""
    return [k for k, v in workflow.items()
            if v["class_type"].startswith("LoadImage") and "image" in v.get("inputs", {})]


def check_image_node(workflow: dict, node_id: str, source: str) -> None:
    loaders = image_nodes(workflow)
    if node_id not in loaders:
        what = (f"is a {workflow[node_id]['class_type']} node" if node_id in workflow else "is not a node of it")
        hint = (f"its LoadImage nodes: {', '.join(loaders)}" if loaders
                else "it has no LoadImage node: add one where the input image goes")
        raise WorkflowFileError(f"--image-node {node_id} {what} in {source}; it must name the LoadImage node that "
                                f"takes the input image ({hint})")


# ---------------------------------------------------------------- the client

class ComfyClient:
    def __init__(self, server: str = "127.0.0.1:8188", timeout: float = 3600.0, max_file_bytes: int = MAX_FILE_BYTES,
                 file_seconds: float = FILE_SECONDS):
        self.server = server.replace("http://", "").rstrip("/")
        self.client_id = uuid.uuid4().hex
        self.timeout = timeout
        self.max_file_bytes, self.file_seconds = max_file_bytes, file_seconds

    # -- HTTP ------------------------------------------------------------------------
    def _url(self, path: str) -> str:
        return f"http://{self.server}{path}"

    def _read_json(self, response, what: str):
        chunks = []
        self._stream(response, chunks.append, MAX_JSON_BYTES, JSON_SECONDS, what)
        body = b"".join(chunks)
        if not body:
            return {}
        try:
            return json.loads(body)
        except ValueError as error:
            raise ServerAnswerError(f"{self.server} answered {what} with malformed JSON ({error}): "
                                    f"{body[:80]!r}") from None

    def _stream(self, response, write, max_bytes: int, seconds: float, what: str) -> int:
        """Copy a response body to ``write`` block by block, refusing more than ``max_bytes``
        or a body still arriving after ``seconds`` (a server that trickles or never ends)."""
        started, size = time.monotonic(), 0
        while True:
            block = response.read1(1 << 16)
            if not block:
                return size
            size += len(block)
            if size > max_bytes:
                raise ServerAnswerError(f"{self.server} sent more than {max_bytes / 2**20:g} MiB for {what} (the cap); "
                                        "refused")
            if time.monotonic() - started > seconds:
                raise ServerAnswerError(f"{self.server} was still sending {what} after {seconds:g} s (the cap); "
                                        "refused")
            write(block)

    def get_json(self, path: str, timeout: float = 60):
        with urllib.request.urlopen(self._url(path), timeout=timeout) as response:
            return self._read_json(response, path)

    def post_json(self, path: str, payload: dict):
        request = urllib.request.Request(self._url(path), data=json.dumps(payload).encode(),
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return self._read_json(response, path)
        except urllib.error.HTTPError as error:
            raise ComfyError(f"{path} refused the request: {error.read(4096).decode(errors='replace')}") from None

    def alive(self, timeout: float = 5.0) -> str | None:
        """None when the server answers /system_stats, else why not."""
        try:
            self.get_json("/system_stats", timeout=timeout)
        except (OSError, ComfyError) as error:
            return f"{self.server}: {getattr(error, 'reason', None) or error}"
        return None

    def upload_image(self, path: str | Path, name: str | None = None) -> str:
        path = Path(path)
        boundary = uuid.uuid4().hex
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"{name or path.name}\"\r\n"
                "Content-Type: application/octet-stream\r\n\r\n").encode() + path.read_bytes() + (
                f"\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"overwrite\"\r\n\r\ntrue\r\n"
                f"--{boundary}--\r\n").encode()
        request = urllib.request.Request(self._url("/upload/image"), data=body,
                                         headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                answer = self._read_json(response, "/upload/image")
        except urllib.error.HTTPError as error:
            raise ComfyError(f"/upload/image refused {path.name}: {error.read(4096).decode(errors='replace')}") from None
        if not isinstance(answer, dict) or not isinstance(answer.get("name"), str):
            raise ServerAnswerError(f"{self.server} answered the upload without a file name: {str(answer)[:80]}")
        return answer["name"]

    # -- running -----------------------------------------------------------------------
    def submit(self, workflow: dict, extra_data: dict | None = None) -> str:
        """Queue an API-format workflow; ``extra_data`` as ComfyUI takes it (e.g. the UI
        workflow under extra_pnginfo, which saved files then carry)."""
        body = {"prompt": workflow, "client_id": self.client_id}
        if extra_data:
            body["extra_data"] = extra_data
        answer = self.post_json("/prompt", body)
        if not isinstance(answer, dict) or not isinstance(answer.get("prompt_id"), str):
            raise ServerAnswerError(f"{self.server} queued the prompt without a prompt_id: {str(answer)[:80]}")
        return answer["prompt_id"]

    def interrupt(self) -> None:
        self.post_json("/interrupt", {})

    def history(self, prompt_id: str) -> dict | None:
        answer = self.get_json(f"/history/{prompt_id}")
        if not isinstance(answer, dict):
            raise ServerAnswerError(f"{self.server} answered /history with a JSON {type(answer).__name__}")
        entry = answer.get(prompt_id)
        if entry is not None and not (isinstance(entry, dict) and isinstance(entry.get("status", {}), dict)):
            raise ServerAnswerError(f"{self.server} answered /history with a malformed entry: {str(entry)[:80]}")
        return entry

    def wait(self, prompt_id: str, on_event=None) -> dict:
        """Block until the prompt finished; ``on_event(type, data)`` sees progress messages."""
        try:
            import websocket  # websocket-client
        except ImportError:
            websocket = None
        if websocket is not None:
            try:
                self._follow(websocket, prompt_id, on_event)
            except websocket.WebSocketBadStatusException:
                pass  # no websocket here (a proxy, a stand-in): /history alone tells when it ends
            except websocket.WebSocketException as error:  # the server went away
                raise ConnectionError(f"{self.server}: {error}") from None
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            entry = self.history(prompt_id)
            if entry:
                return entry
            time.sleep(0.5)
        raise TimeoutError(f"prompt {prompt_id} did not finish within {self.timeout} s")

    def _follow(self, websocket, prompt_id: str, on_event) -> None:
        """Read the websocket's progress messages until the prompt ends."""
        ws = websocket.create_connection(f"ws://{self.server}/ws?clientId={self.client_id}", timeout=5)
        try:
            deadline = time.monotonic() + self.timeout
            while time.monotonic() < deadline:
                try:
                    message = ws.recv()
                except websocket.WebSocketTimeoutException:
                    if self.history(prompt_id):
                        break
                    continue
                if not isinstance(message, str):
                    continue  # binary preview images
                try:
                    event = json.loads(message)
                except ValueError:
                    continue  # not a message of ComfyUI's; /history decides
                if not isinstance(event, dict) or not isinstance(event.get("data", {}), dict):
                    continue
                data = event.get("data", {})
                if data.get("prompt_id") not in (None, prompt_id):
                    continue
                if on_event:
                    on_event(event.get("type"), data)
                if event.get("type") in ("execution_success", "execution_error", "execution_interrupted"):
                    break
                if event.get("type") == "executing" and data.get("node") is None:
                    break
        finally:
            ws.close()

    # -- outputs -------------------------------------------------------------------------
    def fetch_to(self, file: OutputFile, target: Path) -> int:
        """Stream one output file into ``target`` (a temporary path the caller owns),
        at most ``max_file_bytes`` and ``file_seconds``; returns its size."""
        ref = file.ref
        query = urllib.parse.urlencode({k: str(ref.get(k, "")) for k in ("filename", "subfolder", "type")})
        with urllib.request.urlopen(self._url(f"/view?{query}"), timeout=min(60.0, self.file_seconds)) as response, \
                open(target, "wb") as handle:
            return self._stream(response, handle.write, self.max_file_bytes, self.file_seconds,
                                f"the output file {file.local_name}")

    def download(self, file: OutputFile | dict, folder: Path) -> Path:
        """One output file (or a /history file entry) into ``folder`` under its safe local name,
        written whole or not at all."""
        from .outputs import atomic_write

        if isinstance(file, dict):
            name = safe_base_name(str(file.get("filename", "")))
            if not name:
                raise ServerAnswerError(f"a file entry without a usable name: {str(file)[:120]}")
            file = OutputFile(node="", ref=file, local_name=name)
        return atomic_write(Path(folder) / file.local_name, lambda target: self.fetch_to(file, target))

    def download_outputs(self, entry: dict, folder: Path) -> list[Path]:
        return [self.download(file, folder) for file in output_files(entry)]
