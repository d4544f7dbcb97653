"""The Download checkpoint button of Load SyncDreamer Checkpoint (web/js/checkpoint_download.js):
routes on ComfyUI's server that fetch the official checkpoint into models/syncdreamer in the
background (the same download as ``python -m syncdreamer_core download``), report how far it
got or why it failed, and cancel it. The URL and the folder are fixed here; a request cannot
choose either.

    GET  /syncdreamer/checkpoint           {"present", "usable", "state", "kind", "summary", "done", "total",
                                            "message", "file", "kept"}
    POST /syncdreamer/checkpoint/download  starts (or joins) the download; the same answer
    POST /syncdreamer/checkpoint/cancel    stops it, keeping the bytes for a later resume; the same answer

``present``: the official file is in models/syncdreamer, whole (the button is shown while it is
not); ``usable``: some checkpoint the loader can use is there. A failure stops being shown once
a checkpoint arrives another way or the loader has loaded one. ``state``: idle, downloading,
cancelling, failed, cancelled or done; ``kind`` says why it failed, ``summary`` in a few words
(the button's label), ``message`` in full; ``kept``: bytes of a stopped download the next one
continues.
"""

from __future__ import annotations

import logging
import os
import sys
import threading

from .common import MODEL_FOLDER

BUTTON_NAME = "ComfyUI's Download checkpoint button"


class CheckpointDownload:
    """One download at a time for the whole server; a second press joins the first."""

    def __init__(self):
        self.lock = threading.Lock()
        self.state, self.kind, self.summary, self.done, self.total, self.message = "idle", "", "", 0, 0, ""
        self.thread: threading.Thread | None = None
        self.cancel = None
        self.usable_then: frozenset[str] = frozenset()  # the checkpoints there when the download failed

    def status(self) -> dict:
        from syncdreamer_core.weights.download import OFFICIAL

        present, usable = self.present()
        with self.lock:
            if self.state in ("failed", "cancelled") and usable - self.usable_then:
                self._forget()  # a checkpoint arrived another way since
            return {"present": present, "usable": bool(usable), "state": self.state, "kind": self.kind,
                    "summary": self.summary, "done": self.done, "total": self.total or OFFICIAL.size,
                    "message": self.message, "file": OFFICIAL.filename, "kept": self.kept()}

    def loaded(self) -> None:
        """The loader has just loaded a checkpoint: a failure is no longer worth showing."""
        with self.lock:
            if self.state in ("failed", "cancelled"):
                self._forget()

    def _forget(self) -> None:
        self.state, self.kind, self.summary, self.message = "idle", "", "", ""

    @staticmethod
    def present() -> tuple[bool, frozenset[str]]:
        """(the official file is there whole, the checkpoints the loader can use)."""
        import folder_paths

        from syncdreamer_core.weights.download import OFFICIAL

        folder_paths.filename_list_cache.pop(MODEL_FOLDER, None)
        usable = set()
        for name in folder_paths.get_filename_list(MODEL_FOLDER):
            path = folder_paths.get_full_path(MODEL_FOLDER, name)
            if name != OFFICIAL.filename or (path and os.path.getsize(path) == OFFICIAL.size):
                usable.add(name)
        return OFFICIAL.filename in usable, frozenset(usable)

    @staticmethod
    def kept() -> int:
        """Bytes of a download that stopped (the next one continues from there)."""
        import folder_paths

        from syncdreamer_core.weights.download import OFFICIAL

        part = os.path.join(folder_paths.get_folder_paths(MODEL_FOLDER)[0], f"{OFFICIAL.filename}.part")
        return os.path.getsize(part) if os.path.isfile(part) else 0

    def start(self) -> dict:
        from syncdreamer_core.weights.download import Cancel

        if not self.present()[0]:
            with self.lock:
                if self.state not in ("downloading", "cancelling"):
                    self.state, self.kind, self.summary, self.message = "downloading", "", "", ""
                    self.cancel = Cancel()
                    self.thread = threading.Thread(target=self._run, args=(self.cancel,),
                                                   name="syncdreamer-checkpoint-download", daemon=True)
                    self.thread.start()
        return self.status()

    def stop(self) -> dict:
        with self.lock:
            if self.state == "downloading" and self.cancel is not None:
                self.state = "cancelling"
                self.cancel.set()
        return self.status()

    def _progress(self, done: int, total: int) -> None:
        self.done, self.total = done, total

    def _run(self, cancel) -> None:
        import folder_paths

        from syncdreamer_core.weights.checkpoint import CheckpointError
        from syncdreamer_core.weights.download import DownloadError, download_checkpoint

        folder = folder_paths.get_folder_paths(MODEL_FOLDER)[0]
        try:
            path = download_checkpoint(folder, progress=self._progress, cancel=cancel, who=BUTTON_NAME)
        except (DownloadError, CheckpointError) as error:
            kind = getattr(error, "kind", "wrong_file")
            self._finish("cancelled" if kind == "cancelled" else "failed", kind, str(error),
                         getattr(error, "summary", "not the official file"))
            logging.warning("SyncDreamer: checkpoint download: %s", error)
            return
        except Exception as error:  # noqa: BLE001 - whatever it is, the node says it
            self._finish("failed", "error", f"{type(error).__name__}: {error}", type(error).__name__)
            logging.exception("SyncDreamer: checkpoint download failed")
            return
        folder_paths.filename_list_cache.pop(MODEL_FOLDER, None)  # the loader's list shows it at once
        self._finish("done", "", f"saved {path} ({os.path.getsize(path):,} bytes, checked)")
        logging.info("SyncDreamer: %s", self.message)

    def _finish(self, state: str, kind: str, message: str, summary: str = "") -> None:
        usable = self.present()[1]
        with self.lock:
            self.state, self.kind, self.message, self.summary = state, kind, message, summary
            self.usable_then = usable


DOWNLOAD = CheckpointDownload()


def install_routes() -> None:
    """Add the routes to the running ComfyUI server (nothing outside one)."""
    server = sys.modules.get("server")
    if server is None or not hasattr(server, "PromptServer") or getattr(server.PromptServer, "instance", None) is None:
        return
    from aiohttp import web

    routes = server.PromptServer.instance.routes

    @routes.get("/syncdreamer/checkpoint")
    async def checkpoint_status(request):
        return web.json_response(DOWNLOAD.status())

    @routes.post("/syncdreamer/checkpoint/download")
    async def checkpoint_download(request):
        return web.json_response(DOWNLOAD.start())

    @routes.post("/syncdreamer/checkpoint/cancel")
    async def checkpoint_cancel(request):
        return web.json_response(DOWNLOAD.stop())
