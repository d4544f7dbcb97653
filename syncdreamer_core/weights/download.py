"""The official checkpoint from a Hugging Face mirror, for the ``download`` command and the
loader's Download checkpoint button alike: fetched with resume and progress, never more bytes
than the file has, never without the disk space for it, one download per folder across
processes, checked to be the official file before anything loads it, and optionally converted
to an fp16 ``.safetensors``. A failure says what happened to the bytes (``DownloadError.kind``).

The official release links ``syncdreamer-pretrain.ckpt`` on Google Drive; the same file
(same size and SHA-256) is mirrored on Hugging Face, where ComfyUI's frontends and
``huggingface_hub`` can fetch it. No ``.safetensors`` copy of it is published, so the
download is the pickle, read weights-only like any other (no code runs), and ``--safetensors``
converts it here.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .checkpoint import OFFICIAL_FILENAME, OFFICIAL_SIZE, CheckpointError, check_official_size
from .transfer import Cancel, PartHash, TransferError, fetch

__all__ = ["OFFICIAL", "Cancel", "DownloadError", "OfficialFile", "download_checkpoint", "hub_endpoint"]


@dataclass(frozen=True)
class OfficialFile:
    """Where the checkpoint is mirrored and what it must be."""

    repo_id: str
    filename: str
    size: int
    sha256: str

    def url(self, endpoint: str | None = None) -> str:
        return f"{hub_endpoint(endpoint)}/{self.repo_id}/resolve/main/{self.filename}"


def hub_endpoint(endpoint: str | None = None) -> str:
    """The Hugging Face endpoint: the one given, else $HF_ENDPOINT (a mirror), else the Hub."""
    chosen = (endpoint or os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")
    parts = urllib.parse.urlsplit(chosen)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        where = "--endpoint" if endpoint else "HF_ENDPOINT"
        raise DownloadError("unreachable", f"{where} must be a web address such as https://huggingface.co, got {chosen!r}",
                            f"{where} is not a web address")
    return chosen


OFFICIAL = OfficialFile(repo_id="camenduru/SyncDreamer", filename=OFFICIAL_FILENAME, size=OFFICIAL_SIZE,
                        sha256="5ebb31334d9e4002b2590dd805e25238beaf95fa082f6e39a132344624448dcb")
#: Where the templates' loader says the file goes (ComfyUI's models/<folder>).
MODEL_FOLDER = "syncdreamer"


class DownloadError(RuntimeError):
    """The checkpoint could not be fetched; the message says what happened to the bytes and what
    to do. ``kind``: unreachable, interrupted, wrong_file, disk_full, busy or cancelled;
    ``summary``: the same in a few words (a button's label)."""

    def __init__(self, kind: str, message: str, summary: str = ""):
        super().__init__(message)
        self.kind, self.summary = kind, summary or kind.replace("_", " ")


def sha256_of(path: Path, chunk: int = 8 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def check_official(path: str | os.PathLike, expected: OfficialFile | None = None, full: bool = True) -> None:
    """Raise CheckpointError unless ``path`` is the official file: its size (a shorter file
    is a download that stopped), then its SHA-256 (``full``; about a minute for 5.6 GB).
    The loader checks the keys and shapes (``inspect_checkpoint``)."""
    expected = expected or OFFICIAL
    path = Path(path)
    check_official_size(path, expected.size, expected.filename, always=True)
    if full and sha256_of(path) != expected.sha256:
        raise CheckpointError(f"{path} has the official size but not its content (SHA-256 differs): a corrupted "
                              "download or another file; delete it and download it again.")


def default_folder() -> Path:
    """ComfyUI's models/syncdreamer when the pack sits in its custom_nodes, else ./models/syncdreamer."""
    pack = Path(__file__).resolve().parents[2]
    if pack.parent.name == "custom_nodes":
        return pack.parent.parent / "models" / MODEL_FOLDER
    return Path("models") / MODEL_FOLDER


def free_bytes(folder: Path) -> int:
    return shutil.disk_usage(folder).free


def _gb(count: int) -> str:
    return f"{count / 1e9:.1f} GB" if count >= 1e8 else f"{count / 1e6:.1f} MB"


class FolderLock:
    """One download per target folder across processes: an OS file lock beside the partial
    file (released by the OS if its holder dies) and a note of who holds it."""

    def __init__(self, folder: Path, filename: str, who: str):
        self.path = folder / f"{filename}.lock"
        self.note = folder / f"{filename}.lock.json"
        self.who = who

    def __enter__(self):
        from filelock import FileLock, Timeout

        self._lock = FileLock(str(self.path), timeout=0)
        try:
            self._lock.acquire()
        except Timeout:
            raise DownloadError("busy", f"another download of {self.path.name[:-5]} into {self.path.parent} is running: "
                                f"{self.holder()}. It will be there when that one ends; to download here "
                                "instead, stop that one first.", "another download is running") from None
        self.note.write_text(json.dumps({"who": self.who, "pid": os.getpid(), "host": socket.gethostname(),
                                         "since": time.strftime("%Y-%m-%d %H:%M:%S")}))
        return self

    def holder(self) -> str:
        try:
            note = json.loads(self.note.read_text())
            return f"{note['who']} (process {note['pid']} on {note['host']}, since {note['since']})"
        except (OSError, ValueError, KeyError, TypeError):
            return "another process"

    def __exit__(self, *exc):
        self.note.unlink(missing_ok=True)
        self._lock.release()


def download_checkpoint(folder: str | os.PathLike | None = None, endpoint: str | None = None,
                        progress: bool | Callable[[int, int], None] = True,
                        expected: OfficialFile | None = None, cancel: Cancel | None = None,
                        who: str = "`python -m syncdreamer_core download`", stall: float | None = None) -> Path:
    """Fetch (or finish fetching) the official checkpoint into ``folder`` from the Hub or a
    mirror of it (``endpoint``); returns its path, checked to be the official file.
    ``progress``: a bar on stderr, none, or a ``(bytes, total)`` callback; ``cancel`` stops it
    from another thread (the bytes are kept); ``who`` names this download to a second one.
    The bytes arrive in ``<name>.part``, so the loader never sees a partial file under the
    official name; a shorter file under the official name (a copy that stopped) is continued."""
    expected = expected or OFFICIAL
    url = expected.url(endpoint)
    folder = Path(folder) if folder is not None else default_folder()
    target = folder / expected.filename
    if target.is_file() and target.stat().st_size == expected.size:
        check_official(target, expected)  # already here, and whole
        return target
    if target.is_file() and target.stat().st_size > expected.size:
        check_official_size(target, expected.size, expected.filename)
    folder.mkdir(parents=True, exist_ok=True)
    part = folder / f"{expected.filename}.part"
    with FolderLock(folder, expected.filename, who):
        _adopt_short_file(target, part)
        have = part.stat().st_size if part.exists() else 0
        if have > expected.size:
            part.unlink()
            have = 0
        free = free_bytes(folder)
        if free < expected.size - have:
            raise DownloadError("disk_full", f"not enough disk space: the checkpoint needs {_gb(expected.size - have)} "
                                f"more in {folder}, {_gb(free)} free. Free some space (or download to another "
                                "folder) and start again." + _kept(have, part), f"needs {_gb(expected.size - have)} free")
        report = _reporter(progress, expected, have)
        digest = PartHash(part)
        try:
            fetch(url, part, expected.size, digest, cancel, report, stall or _default_stall())
        except TransferError as error:
            raise _told(error, url, expected, part) from None
        finally:
            report(None)
        if digest.hexdigest() != expected.sha256:
            part.unlink()
            raise DownloadError("wrong_file", f"{_source(url, url)} sent {expected.size:,} bytes, the official size, but "
                                "not the official content (its SHA-256 differs): the download was deleted. Download "
                                "it from https://huggingface.co or another mirror.", "the server sent another file")
        os.replace(part, target)
    from .checkpoint import inspect_checkpoint

    try:
        inspect_checkpoint(target)
    except CheckpointError:
        target.unlink()  # never leave a wrong file where the loader would pick it up
        raise
    return target


def _default_stall() -> float:
    from . import transfer

    return transfer.STALL_SECONDS


def _adopt_short_file(target: Path, part: Path) -> None:
    """A file under the official name that is shorter than the official one is a copy that
    stopped: the download continues it (the SHA-256 at the end tells if it was not)."""
    if not target.is_file():
        return
    if not part.exists() or part.stat().st_size < target.stat().st_size:
        os.replace(target, part)
    else:
        target.unlink()  # the partial download is further along


def _kept(have: int, part: Path) -> str:
    return (f" The {have:,} bytes downloaded so far are kept in {part}: the next download continues from there."
            if have else "")


def _source(url: str, source: str) -> str:
    return url if source == url else f"{url} (redirected to {urllib.parse.urlsplit(source).netloc})"


def _told(error: TransferError, url: str, expected: OfficialFile, part: Path) -> DownloadError:
    """A transfer failure in plain words: what happened and where the bytes are."""
    source = _source(url, error.source)
    have = part.stat().st_size if part.exists() else 0
    if error.kind == "wrong_size":
        if error.discard:
            part.unlink(missing_ok=True)
        return DownloadError("wrong_file", f"{source} is not the official checkpoint: {error.reason}, the official "
                             f"{expected.filename} has {expected.size:,}. "
                             + ("The download was stopped there and deleted. " if error.discard else
                                "Nothing was saved from it. ")
                             + "Download from https://huggingface.co or another mirror (--endpoint or HF_ENDPOINT)."
                             + ("" if error.discard else _kept(have, part)), "the server sent another file")
    if error.kind == "cancelled":
        return DownloadError("cancelled", f"download cancelled at {have:,} of {expected.size:,} bytes." + _kept(have, part),
                             f"cancelled at {_share(have, expected)}")
    if error.kind == "disk_full":
        return DownloadError("disk_full", f"the disk is full: {part.parent} has {_gb(free_bytes(part.parent))} free and "
                             f"the checkpoint needs {_gb(expected.size - have)} more. Free some space and start again."
                             + _kept(have, part), f"disk full at {_share(have, expected)}")
    if error.kind == "interrupted" or have:
        return DownloadError("interrupted", f"the download from {source} stopped at {have:,} of {expected.size:,} "
                             f"bytes: {error.reason}." + _kept(have, part), f"stopped at {_share(have, expected)}")
    return DownloadError("unreachable", f"could not download {source}: {error.reason}. Nothing was downloaded. Check "
                         "the internet connection (or the mirror: --endpoint or HF_ENDPOINT) and try again.",
                         f"can't reach {urllib.parse.urlsplit(error.source).hostname}")


def _share(have: int, expected: OfficialFile) -> str:
    return f"{100 * have // expected.size}%"


def _reporter(progress, expected: OfficialFile, have: int) -> Callable[[int | None], None]:
    """``(done)`` -> the caller's callback or a bar on stderr; ``None`` closes the bar."""
    if callable(progress):
        progress(have, expected.size)
        return lambda done: done is not None and progress(done, expected.size)
    if not progress:
        return lambda done: None
    from tqdm.auto import tqdm

    bar = tqdm(total=expected.size, initial=have, unit="B", unit_scale=True, unit_divisor=1024,
               desc=expected.filename, mininterval=1.0)

    def report(done):
        if done is None:
            bar.close()
        else:
            bar.update(done - bar.n)

    return report
