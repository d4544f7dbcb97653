"""One resumable HTTP GET into a file, bounded by the size the file must have.

The body goes to ``part`` from where it ends (``Range``), never past ``size`` bytes: a server
that announces another length, or sends more than it announced, is stopped before its extra
bytes reach the disk. A connection that breaks or stalls is retried while bytes keep coming.
``Cancel`` stops it from another thread within a second, even in the middle of a slow read.
Every failure is a ``TransferError`` of one kind, so a caller can say in plain words what
happened to the bytes:

- ``unreachable``: nothing arrived (no connection, an HTTP error); the part file is untouched.
- ``interrupted``: the connection broke after bytes arrived; they are kept for a resume.
- ``wrong_size``: the server serves another length, or sent more than ``size``.
- ``disk_full``: the disk filled up; what was written whole is kept.
- ``cancelled``: ``Cancel.set()``; what arrived is kept.
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import re
import socket
import threading
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

CHUNK = 1 << 20
#: No byte for this long and the connection counts as cut (then retried).
STALL_SECONDS = 60.0
#: Attempts in a row that bring no byte before the transfer gives up.
ATTEMPTS_WITHOUT_PROGRESS = 4
MAX_REDIRECTS = 8
USER_AGENT = "ComfyUI-SyncDreamer (checkpoint download)"


class TransferError(RuntimeError):
    """``kept``: bytes in the part file now; ``discard``: this server wrote bytes that cannot be trusted."""

    def __init__(self, kind: str, reason: str, source: str, kept: int = 0, discard: bool = False):
        super().__init__(reason)
        self.kind, self.reason, self.source, self.kept, self.discard = kind, reason, source, kept, discard


class PartHash:
    """The SHA-256 of a part file, kept in step with it as bytes are appended."""

    def __init__(self, part: Path, chunk: int = 8 << 20):
        self.restart()
        if part.exists():
            with part.open("rb") as handle:
                while block := handle.read(chunk):
                    self._hash.update(block)

    def restart(self) -> None:
        self._hash = hashlib.sha256()

    def update(self, block: bytes) -> None:
        self._hash.update(block)

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


class Cancel:
    """Asked from any thread; the transfer notices between reads, and a read that waits for a
    slow server is woken by shutting its socket down."""

    def __init__(self):
        self._event = threading.Event()
        self._guard = threading.Lock()
        self._sockets: set[socket.socket] = set()

    def set(self) -> None:
        self._event.set()
        with self._guard:
            for sock in self._sockets:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def is_set(self) -> bool:
        return self._event.is_set()

    def wait(self, seconds: float) -> bool:
        return self._event.wait(seconds)

    def watch(self, sock: socket.socket | None) -> None:
        if sock is None:
            return
        with self._guard:
            self._sockets.add(sock)
        if self.is_set():
            self.set()

    def forget(self, sock: socket.socket | None) -> None:
        with self._guard:
            self._sockets.discard(sock)


def fetch(url: str, part: Path, size: int, digest: PartHash, cancel: Cancel | None = None,
          progress: Callable[[int], None] | None = None, stall: float = STALL_SECONDS) -> None:
    """Bring ``part`` to ``size`` bytes from ``url``, ``digest`` in step with it."""
    cancel = cancel or Cancel()
    failures = 0
    while True:
        have = part.stat().st_size if part.exists() else 0
        if have == size:
            return
        try:
            _attempt(url, part, have, size, digest, cancel, progress, stall)
            return
        except TransferError as error:
            if error.kind != "interrupted":
                raise
            now = part.stat().st_size if part.exists() else 0
            failures = 0 if now > have else failures + 1
            if failures >= ATTEMPTS_WITHOUT_PROGRESS:
                raise
            if cancel.wait(min(0.25 * 2 ** failures, 5.0)):
                raise TransferError("cancelled", "cancelled", error.source, now) from None


def _attempt(url, part: Path, have: int, size: int, digest, cancel: Cancel, progress, stall: float) -> None:
    source = url
    if cancel.is_set():
        raise TransferError("cancelled", "cancelled", source, have)
    try:
        connection, response, source = _open(url, have, stall, cancel)
    except TransferError:
        raise
    except (OSError, http.client.HTTPException) as error:
        raise _broken(error, source, have, cancel, stall, reached=False) from None
    try:
        start = _check_response(response, source, have, size)
        _stream(response, part, start, size, digest, cancel, progress, source)
    except (OSError, http.client.HTTPException) as error:
        if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
            raise TransferError("disk_full", "the disk is full", source, _size(part)) from None
        raise _broken(error, source, _size(part), cancel, stall, reached=True) from None
    finally:
        cancel.forget(connection.sock)
        connection.close()


def _size(part: Path) -> int:
    return part.stat().st_size if part.exists() else 0


def _broken(error: BaseException, source: str, kept: int, cancel: Cancel, stall: float, reached: bool) -> TransferError:
    if cancel.is_set():
        return TransferError("cancelled", "cancelled", source, kept)
    reason = _reason(error, stall)
    return TransferError("interrupted" if reached else "unreachable", reason, source, kept)


def _reason(error: BaseException, stall: float) -> str:
    if isinstance(error, (TimeoutError, socket.timeout)):
        return f"no data for {stall:g} s"
    if isinstance(error, http.client.IncompleteRead):
        return f"the connection closed early ({len(error.partial):,} bytes of that response arrived)"
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text[:300]}" if text else type(error).__name__


def _open(url: str, start: int, stall: float, cancel: Cancel):
    """GET ``url`` from byte ``start`` following redirects; the connection, response and final URL."""
    for _ in range(MAX_REDIRECTS + 1):
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise TransferError("unreachable", f"{url!r} is not an http(s) address", url)
        connection, target = _connection(parts, stall)
        connection.connect()
        cancel.watch(connection.sock)
        connection.request("GET", target, headers={"Range": f"bytes={start}-", "User-Agent": USER_AGENT,
                                                   "Accept-Encoding": "identity"})
        response = connection.getresponse()
        if response.status in (301, 302, 303, 307, 308) and response.getheader("Location"):
            location = urllib.parse.urljoin(url, response.getheader("Location"))
            cancel.forget(connection.sock)
            connection.close()
            url = location
            continue
        return connection, response, url
    raise TransferError("unreachable", f"more than {MAX_REDIRECTS} redirects", url)


def _connection(parts: urllib.parse.SplitResult, stall: float):
    """A connection to the host or through the proxy the environment names (HTTPS_PROXY...),
    and the request target to send on it."""
    secure = parts.scheme == "https"
    port = parts.port or (443 if secure else 80)
    target = urllib.parse.urlunsplit(("", "", parts.path or "/", parts.query, ""))
    proxy = None if urllib.request.proxy_bypass(parts.hostname) else urllib.request.getproxies().get(parts.scheme)
    kind = http.client.HTTPSConnection if secure else http.client.HTTPConnection
    if not proxy:
        return kind(parts.hostname, port, timeout=stall), target
    via = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    if secure:
        connection = http.client.HTTPSConnection(via.hostname, via.port or 8080, timeout=stall)
        connection.set_tunnel(parts.hostname, port)
        return connection, target
    return http.client.HTTPConnection(via.hostname, via.port or 8080, timeout=stall), parts.geturl()


def _check_response(response, source: str, have: int, size: int) -> int:
    """Where the body starts in the file; refuses a response of another length before any byte
    of it is written."""
    if response.status == 416 and have == size:
        return have
    if response.status not in (200, 206):
        raise TransferError("unreachable", f"the server answered {response.status} {response.reason}", source, have)
    announced = response.getheader("Content-Length")
    announced = int(announced) if announced and announced.isdigit() else None
    if response.status == 206:
        match = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+|\*)", (response.getheader("Content-Range") or "").strip())
        if not match or int(match.group(1)) != have:
            raise TransferError("interrupted", f"the server resumed from another byte ({response.getheader('Content-Range')!r}, "
                                f"asked {have:,})", source, have)
        if match.group(3) != "*" and int(match.group(3)) != size:
            raise TransferError("wrong_size", f"it serves a file of {int(match.group(3)):,} bytes", source, have)
        start = have
    else:
        start = 0  # the server ignored the Range: it sends the whole file again
    if announced is not None and start + announced != size:
        raise TransferError("wrong_size", f"it serves a file of {start + announced:,} bytes", source, have)
    return start


def _stream(response, part: Path, start: int, size: int, digest, cancel: Cancel, progress, source: str) -> None:
    done = start
    if start == 0:
        digest.restart()
    with part.open("r+b" if part.exists() else "wb") as handle:
        handle.seek(start)
        handle.truncate()
        while True:
            if cancel.is_set():
                raise TransferError("cancelled", "cancelled", source, done)
            block = response.read1(CHUNK)
            if not block:
                break
            if done + len(block) > size:
                raise TransferError("wrong_size", f"it sent more than the {size:,} bytes of the file", source, done,
                                    discard=True)
            try:
                _write(handle, block)
            except OSError:
                handle.truncate(done)  # keep only what was written whole
                raise
            digest.update(block)
            done += len(block)
            if progress is not None:
                progress(done)
    if cancel.is_set():
        raise TransferError("cancelled", "cancelled", source, done)
    if done < size:
        raise TransferError("interrupted", f"the connection closed at {done:,} of {size:,} bytes", source, done)


def _write(handle, block: bytes) -> None:
    handle.write(block)
    handle.flush()
