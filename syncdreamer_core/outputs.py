"""Writing results so that no run silently overwrites another, and no reader ever sees a
half-written file.

- ``atomic_write``: the content goes to a temporary file in the same folder, which is
  renamed onto the final name once complete (or linked, when the name must not exist
  yet: the second of two writers then fails instead of replacing the first's file).
- ``OutputClaim``: a run claims all its output names before its expensive work starts,
  by creating them exclusively; a second run into the same names fails at once with a
  clear message. What the run does not complete is released again.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

#: Longest file name most filesystems accept (bytes).
MAX_NAME_BYTES = 255


class OutputError(ValueError):
    """An output location that cannot be written, with what to do about it."""


def check_writable_folder(folder: Path, what: str = "output folder") -> None:
    """``folder`` exists as a writable folder, or can be created: every existing ancestor
    is a folder and the nearest one is writable."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"the {what} {folder} is a file; give a folder")
    probe = folder
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise OutputError(f"cannot create the {what} {folder}: {probe} is a file, not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write into {probe} (permission denied): choose another {what}")


def check_name(name: str, what: str = "file name") -> None:
    if len(os.fsencode(name)) > MAX_NAME_BYTES:
        raise OutputError(f"the {what} {name[:40]}... is {len(os.fsencode(name))} bytes long; file systems allow "
                          f"{MAX_NAME_BYTES}: choose a shorter one")


def atomic_write(path: Path, write: Callable[[Path], None], replace: bool = True) -> Path:
    """Write ``path`` through ``write(temporary_path)`` and move it into place when done.
    ``replace=False``: fail with FileExistsError if ``path`` appeared meanwhile."""
    path = Path(path)
    check_name(path.name)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=f".{path.stem[:40]}.", suffix=f".partial{path.suffix}",
                                             dir=path.parent)
    except OSError as error:
        raise OutputError(f"cannot write {path}: {error.strerror or error}; choose another place") from None
    os.close(handle)
    temporary = Path(temporary)
    try:
        write(temporary)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)  # mkstemp makes 0600; a result is an ordinary file
        if replace:
            os.replace(temporary, path)
        else:
            os.link(temporary, path)  # atomic, and refuses an existing name
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
    return path


class OutputClaim:
    """Exclusive claim on a set of output files for one run (a context manager).

    With ``overwrite`` the names are not claimed exclusively (the user asked to replace
    them); otherwise an existing name, or one another run claimed a moment ago, fails
    before any work. Files written through ``write`` replace their placeholder
    atomically; placeholders never written are removed when the run ends."""

    def __init__(self, paths: Iterable[Path], overwrite: bool = False, what: str = "--output"):
        self.paths = [Path(p) for p in paths]
        self.overwrite, self.what = overwrite, what
        self.claimed: list[Path] = []
        self.written: set[Path] = set()

    def __enter__(self) -> OutputClaim:
        for path in self.paths:
            check_name(path.name)
            check_writable_folder(path.parent, f"{self.what} folder")
        if self.overwrite:
            return self
        existing = [p for p in self.paths if p.exists()]
        if existing:
            raise OutputError(f"{existing[0]} already exists (and {len(existing) - 1} more): choose another "
                              f"{self.what} or pass --overwrite")
        try:
            for path in self.paths:
                path.parent.mkdir(parents=True, exist_ok=True)
                os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
                self.claimed.append(path)
        except FileExistsError as error:
            self.release()
            raise OutputError(f"{error.filename} was just created by another run writing into the same place: "
                              f"choose another {self.what}") from None
        return self

    def write(self, path: Path, write: Callable[[Path], None]) -> Path:
        path = Path(path)
        if path not in self.paths:
            raise ValueError(f"{path} is not one of the claimed outputs")
        atomic_write(path, write)
        self.written.add(path)
        return path

    def release(self) -> None:
        for path in self.claimed:
            if path not in self.written:
                with contextlib.suppress(FileNotFoundError):
                    if path.stat().st_size == 0:
                        path.unlink()
        self.claimed = []

    def __exit__(self, *exc) -> None:
        self.release()


LOCK_NAME = ".batch.lock"


class OutputLock:
    """One batch at a time in an output folder (a context manager): a second run into the
    same folder stops at once, naming the run that holds it, instead of computing the same
    items twice. The lock is the operating system's, so it goes with the process that held
    it, however that process ends (no stale lock after a crash or SIGKILL)."""

    def __init__(self, folder: Path):
        self.path = Path(folder) / LOCK_NAME
        self.handle = None

    def __enter__(self) -> OutputLock:
        import socket

        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+")  # noqa: SIM115 - held until __exit__
        if not _try_lock(handle):
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise OutputError(f"another batch ({holder}) is writing into {self.path.parent}: wait for it to finish, "
                              "or choose another --output")
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}")
        handle.flush()
        self.handle = handle
        return self

    def __exit__(self, *exc) -> None:
        if self.handle is not None:
            _unlock(self.handle)
            self.handle.close()
            self.handle = None


def _try_lock(handle) -> bool:
    try:
        import fcntl
    except ImportError:  # Windows
        import msvcrt

        try:
            handle.seek(0)
            msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False


def _unlock(handle) -> None:
    try:
        import fcntl
    except ImportError:
        import msvcrt

        handle.seek(0)
        with contextlib.suppress(OSError):
            msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)
        return
    fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
