"""The official checkpoint from a Hugging Face mirror: fetched with resume and a progress
bar (huggingface_hub), checked to be the official file before anything loads it, and
optionally converted to an fp16 ``.safetensors``.

The official release links ``syncdreamer-pretrain.ckpt`` on Google Drive; the same file
(same size and SHA-256) is mirrored on Hugging Face, where ComfyUI's frontends and
``huggingface_hub`` can fetch it. No ``.safetensors`` copy of it is published, so the
download is the pickle, read weights-only like any other (no code runs), and ``--safetensors``
converts it here.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .checkpoint import OFFICIAL_FILENAME, OFFICIAL_SIZE, CheckpointError, check_official_size


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
    return (endpoint or os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")


OFFICIAL = OfficialFile(repo_id="camenduru/SyncDreamer", filename=OFFICIAL_FILENAME, size=OFFICIAL_SIZE,
                        sha256="5ebb31334d9e4002b2590dd805e25238beaf95fa082f6e39a132344624448dcb")
#: Where the templates' loader says the file goes (ComfyUI's models/<folder>).
MODEL_FOLDER = "syncdreamer"


class DownloadError(RuntimeError):
    """The checkpoint could not be fetched; the message says how far it got and what to do."""


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


def download_checkpoint(folder: str | os.PathLike | None = None, endpoint: str | None = None,
                        progress: bool | Callable[[int, int], None] = True,
                        expected: OfficialFile | None = None) -> Path:
    """Fetch (or finish fetching) the official checkpoint into ``folder`` from the Hub or a
    mirror of it (``endpoint``); returns its path, checked to be the official file.
    ``progress``: a bar on stderr, none, or a ``(bytes, total)`` callback. The bytes
    arrive in ``<name>.part``: a rerun after an interruption resumes where it stopped, and
    the loader never sees a partial file under the official name."""
    expected = expected or OFFICIAL
    folder = Path(folder) if folder is not None else default_folder()
    target = folder / expected.filename
    if target.is_file() and target.stat().st_size == expected.size:
        check_official(target, expected)  # already here, and whole
        return target
    folder.mkdir(parents=True, exist_ok=True)
    part = folder / f"{expected.filename}.part"
    try:
        _fetch(expected, part, endpoint, progress)
    except CheckpointError:
        raise
    except Exception as error:  # noqa: BLE001 - network, HTTP and disk errors all end the same way
        got = part.stat().st_size if part.exists() else 0
        if not got:
            raise DownloadError(
                f"could not download {expected.url(endpoint)}: {_reason(error)}. Check the connection (a mirror: "
                "--endpoint or HF_ENDPOINT) and run the same command again.") from None
        raise DownloadError(
            f"the download of {expected.url(endpoint)} stopped at {got:,} of {expected.size:,} bytes: "
            f"{_reason(error)}. Run the same command again to resume.") from None
    try:
        check_official(part, expected)
    except CheckpointError as error:
        part.unlink()  # a wrong file is no start for a resume
        raise CheckpointError(str(error).replace(str(part), f"{expected.url(endpoint)} (saved as {part})")) from None
    os.replace(part, target)
    from .checkpoint import inspect_checkpoint

    try:
        inspect_checkpoint(target)
    except CheckpointError:
        target.unlink()  # never leave a wrong file where the loader would pick it up
        raise
    return target


def _fetch(expected: OfficialFile, part: Path, endpoint: str | None, progress) -> None:
    """The Hub's metadata (redirects followed, size), then the bytes from where ``part`` ends."""
    import inspect

    from huggingface_hub import get_hf_file_metadata, hf_hub_url
    from huggingface_hub.file_download import http_get

    url = hf_hub_url(expected.repo_id, expected.filename, endpoint=hub_endpoint(endpoint))
    metadata = get_hf_file_metadata(url)
    if metadata.size is not None and metadata.size != expected.size:
        raise CheckpointError(f"{url} serves {metadata.size:,} bytes, the official {expected.filename} has "
                              f"{expected.size:,}: it is not the official checkpoint; nothing was downloaded.")
    have = part.stat().st_size if part.exists() else 0
    if have > expected.size:
        part.unlink()
        have = 0
    options = {}
    if "tqdm_class" in inspect.signature(http_get).parameters:  # huggingface_hub >= 1.0
        options["tqdm_class"] = _progress_bar(progress)
    elif callable(progress):
        progress(have, expected.size)  # older huggingface_hub draws its own bar
    with part.open("ab") as handle:
        http_get(metadata.location or url, handle, resume_size=have, expected_size=expected.size,
                 displayed_filename=expected.filename, **options)


def _progress_bar(progress):
    """A bar on stderr whether or not it is a terminal (huggingface_hub's own hides itself
    in logs), none, or one that reports to a ``(bytes, total)`` callback."""
    from tqdm.auto import tqdm

    report = progress if callable(progress) else None

    class Bar(tqdm):
        def __init__(self, *args, **kwargs):
            kwargs.update(disable=not progress or report is not None, mininterval=1.0)
            super().__init__(*args, **kwargs)
            self.reached = kwargs.get("initial", 0)

        def update(self, n=1):
            self.reached += n
            if report is not None:
                report(self.reached, self.total or 0)
            return super().update(n)

    return Bar


def _reason(error: BaseException) -> str:
    """The root cause: huggingface_hub wraps a refused connection in other errors."""
    while error.__cause__ is not None:
        error = error.__cause__
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text[:300]}" if text else type(error).__name__
