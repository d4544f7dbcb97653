"""The Download checkpoint button of Load SyncDreamer Checkpoint (web/js/checkpoint_download.js):
two routes on ComfyUI's server that fetch the official checkpoint into models/syncdreamer in
the background and report how far it got. The URL and the folder are fixed here; a request
cannot choose either.

    GET  /syncdreamer/checkpoint           {"present", "state", "done", "total", "message", "file"}
    POST /syncdreamer/checkpoint/download  starts (or joins) the download; the same answer
"""

from __future__ import annotations

import logging
import os
import sys
import threading

from .common import MODEL_FOLDER


class CheckpointDownload:
    """One download at a time for the whole server."""

    def __init__(self):
        self.lock = threading.Lock()
        self.state, self.done, self.total, self.message = "idle", 0, 0, ""
        self.thread: threading.Thread | None = None

    def status(self) -> dict:
        from syncdreamer_core.weights.download import OFFICIAL

        return {"present": self.present(), "state": self.state, "done": self.done,
                "total": self.total or OFFICIAL.size, "message": self.message, "file": OFFICIAL.filename}

    @staticmethod
    def present() -> bool:
        import folder_paths

        from syncdreamer_core.weights.download import OFFICIAL

        return OFFICIAL.filename in folder_paths.get_filename_list(MODEL_FOLDER)

    def start(self) -> dict:
        with self.lock:
            if self.state != "downloading" and not self.present():
                self.state, self.message = "downloading", ""
                self.thread = threading.Thread(target=self._run, name="syncdreamer-checkpoint-download", daemon=True)
                self.thread.start()
        return self.status()

    def _progress(self, done: int, total: int) -> None:
        self.done, self.total = done, total

    def _run(self) -> None:
        import folder_paths

        from syncdreamer_core.weights.download import download_checkpoint

        try:
            path = download_checkpoint(folder_paths.get_folder_paths(MODEL_FOLDER)[0], progress=self._progress)
        except Exception as error:  # noqa: BLE001 - every failure is reported on the node
            self.state, self.message = "failed", str(error)
            logging.warning("SyncDreamer: checkpoint download failed: %s", error)
            return
        folder_paths.filename_list_cache.pop(MODEL_FOLDER, None)  # the loader's list shows it at once
        self.state, self.message = "done", f"saved {path} ({os.path.getsize(path):,} bytes, checked)"
        logging.info("SyncDreamer: %s", self.message)


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
