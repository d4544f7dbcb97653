"""A stand-in ComfyUI server that answers like a broken or hostile one, for the batch tests.

It speaks just enough of ComfyUI's HTTP API (``/system_stats``, ``/upload/image``,
``/prompt``, ``/history/<id>``, ``/view``; no websocket) and lets a test choose what the
history lists and how ``/view`` answers:

- ``files``: the output entries /history lists (any file names and subfolders);
- ``history``: raw bytes to answer /history with instead (malformed JSON, wrong shapes);
- ``view``: "normal" (a small body), "huge" (a multi-GB Content-Length, streamed fast),
  "endless" (chunked, never ends), "drip" (one byte at a time, slowly);
- ``die_on_prompt``: the server closes for good when a prompt is queued.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class HostileServer:
    def __init__(self, files=None, history: bytes | None = None, view: str = "normal", die_on_prompt: bool = False):
        self.files = files if files is not None else [{"filename": "views.png", "subfolder": "", "type": "output"}]
        self.history, self.view, self.die_on_prompt = history, view, die_on_prompt
        self.requests: list[str] = []
        self.stopping = threading.Event()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.address = f"127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> HostileServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        if not self.stopping.is_set():
            self.stopping.set()
            threading.Thread(target=self.httpd.shutdown, daemon=True).start()
            self.httpd.server_close()

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _json(self, payload, raw: bytes | None = None):
                body = raw if raw is not None else json.dumps(payload).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):  # noqa: N802 - http.server's name
                server.requests.append(self.path)
                path = urllib.parse.urlparse(self.path)
                if path.path == "/system_stats":
                    return self._json({"system": {"comfyui_version": "stand-in"}})
                if path.path.startswith("/history/"):
                    if server.history is not None:
                        return self._json(None, server.history)
                    outputs = {"9": {"images": server.files}}
                    return self._json({"p1": {"status": {"status_str": "success", "completed": True},
                                              "outputs": outputs}})
                if path.path == "/view":
                    return self._view(urllib.parse.parse_qs(path.query))
                self.send_error(404)

            def _view(self, query):
                name = query.get("filename", [""])[0]
                try:
                    if server.view == "normal":
                        body = f"content of {name}".encode()
                        self.send_response(200)
                        self.send_header("Content-Length", str(len(body)))
                        self.end_headers()
                        self.wfile.write(body)
                    elif server.view == "huge":
                        self.send_response(200)
                        self.send_header("Content-Length", str(8 * 2**30))
                        self.end_headers()
                        block = b"\0" * (1 << 20)
                        for _ in range(8 * 1024):
                            self.wfile.write(block)
                    elif server.view == "endless":
                        self.send_response(200)
                        self.send_header("Transfer-Encoding", "chunked")
                        self.end_headers()
                        block = b"\0" * (1 << 16)
                        while not server.stopping.is_set():
                            self.wfile.write(b"%x\r\n%s\r\n" % (len(block), block))
                    elif server.view == "drip":
                        self.send_response(200)
                        self.send_header("Content-Length", "1000000")
                        self.end_headers()
                        while not server.stopping.is_set():
                            self.wfile.write(b"x")
                            self.wfile.flush()
                            time.sleep(0.2)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up, as it should

            def do_POST(self):  # noqa: N802
                server.requests.append(self.path)
                length = int(self.headers.get("Content-Length", 0))
                self.rfile.read(length)
                if self.path == "/upload/image":
                    return self._json({"name": "input.png", "subfolder": "", "type": "input"})
                if self.path == "/prompt":
                    if server.die_on_prompt:
                        self._json({"prompt_id": "p1", "number": 0})
                        server.stop()
                        return None
                    return self._json({"prompt_id": "p1", "number": 0})
                self.send_error(404)

        return Handler
