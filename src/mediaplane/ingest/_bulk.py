"""Bulk import (``mediaplane import --from``): a whole library from a folder or an S3 prefix.

The client side of the catalog API: for each video file it computes the sha256, asks the
server for assets with that ``content_hash`` (``GET /api/v1/assets?content_hash=``) and
uploads only what is not in yet (``POST /api/v1/assets``, multipart). A file whose only
copies on the server errored is uploaded again: that is how a failed import is retried.

Progress is counted in bytes of the library: reading a file (hashing it; for S3 fetching it
into a scratch file) is the first half of its bytes, uploading it the second half, and a file
that needs no upload counts whole as soon as it is hashed.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx

from mediaplane.storage import ObjectStore, StorageError, open_store

from ._url import IngestError

#: File name extensions taken as video (lowercase).
VIDEO_EXTENSIONS = frozenset(
    {
        ".3gp", ".avi", ".f4v", ".flv", ".m2ts", ".m4v", ".mkv", ".mov", ".mp4", ".mpeg",
        ".mpg", ".mts", ".mxf", ".ogv", ".ts", ".vob", ".webm", ".wmv",
    }
)  # fmt: skip
CHUNK = 8 << 20  # bytes per read (and per ranged GET from S3)


class ImportAborted(IngestError):
    """The whole import cannot go on (bad token, server or library unreachable)."""


def is_video_name(name: str) -> bool:
    return Path(name).suffix.lower() in VIDEO_EXTENSIONS


@dataclass(frozen=True)
class LibraryFile:
    """One file of the library: ``name`` is its path under the folder or key under the prefix."""

    name: str
    size: int


class Library(Protocol):
    """Where the files come from."""

    description: str

    def files(self) -> list[LibraryFile]:
        """Every video file, sorted by name."""
        ...

    def read(self, f: LibraryFile, scratch: Path, on_chunk: Callable[[bytes], None]) -> Path:
        """A local path holding ``f``'s bytes, each chunk of which goes to ``on_chunk`` once.

        Remote files are fetched into ``scratch`` (the caller deletes it afterwards).
        """
        ...


class FolderLibrary:
    """Video files under a local folder, recursively (hidden entries and symlinked folders
    are skipped)."""

    def __init__(self, root: Path) -> None:
        if not root.is_dir():
            raise ImportAborted(f"{root} is not a folder")
        self.root = root
        self.description = str(root)

    def files(self) -> list[LibraryFile]:
        out: list[LibraryFile] = []
        for dirpath, dirnames, filenames in os.walk(self.root, followlinks=False):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for fn in filenames:
                path = Path(dirpath) / fn
                if fn.startswith(".") or not is_video_name(fn) or not path.is_file():
                    continue
                out.append(LibraryFile(path.relative_to(self.root).as_posix(), path.stat().st_size))
        return sorted(out, key=lambda f: f.name)

    def read(self, f: LibraryFile, scratch: Path, on_chunk: Callable[[bytes], None]) -> Path:
        path = self.root / f.name
        with path.open("rb") as src:
            while chunk := src.read(CHUNK):
                on_chunk(chunk)
        return path


class StoreLibrary:
    """Video objects under an object-store prefix (``s3://bucket/prefix?endpoint=…``)."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store
        self.description = store.url

    def files(self) -> list[LibraryFile]:
        try:
            found = [
                LibraryFile(o.key, o.size) for o in self.store.list("") if is_video_name(o.key)
            ]
        except StorageError as exc:
            raise ImportAborted(f"cannot list {self.store.url}: {exc}") from exc
        return sorted(found, key=lambda f: f.name)

    def read(self, f: LibraryFile, scratch: Path, on_chunk: Callable[[bytes], None]) -> Path:
        with scratch.open("wb") as out:
            start = 0
            while start < f.size:
                chunk = self.store.get_bytes(f.name, start, min(f.size, start + CHUNK))
                if not chunk:
                    break
                out.write(chunk)
                on_chunk(chunk)
                start += len(chunk)
        return scratch


def open_library(spec: str) -> Library:
    """A folder path (or ``file:///path``) or ``s3://bucket/prefix?endpoint=…&region=…``
    (credentials from the AWS_* environment variables)."""
    scheme = urlsplit(spec).scheme.lower() if "://" in spec else ""
    if scheme == "s3":
        try:
            return StoreLibrary(open_store(spec))
        except StorageError as exc:
            raise ImportAborted(str(exc)) from exc
    if scheme == "file":
        return FolderLibrary(Path(urlsplit(spec).path))
    if scheme:
        raise ImportAborted(f"cannot import from {scheme}:// URLs; use a folder or s3://")
    return FolderLibrary(Path(spec).expanduser())


class Reporter(Protocol):
    """Where progress goes (the CLI draws one Rich bar)."""

    def begin(self, files: int, total_bytes: int) -> None: ...

    def file(self, index: int, name: str, action: str) -> None: ...

    def advance(self, nbytes: float) -> None: ...


@dataclass
class ImportSummary:
    imported: list[tuple[str, str]] = field(default_factory=list)  # (name, new asset id)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (name, why)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (name, reason)

    @property
    def line(self) -> str:
        return (
            f"imported {len(self.imported)}, skipped {len(self.skipped)} duplicates, "
            f"failed {len(self.failed)}"
        )


class _Reader:
    """A file object for httpx's multipart body that reports bytes as they are sent."""

    def __init__(self, f: Any, on_bytes: Callable[[int], None]) -> None:
        self.f, self.on_bytes = f, on_bytes

    def read(self, n: int = -1) -> bytes:
        chunk: bytes = self.f.read(n)
        self.on_bytes(len(chunk))
        return chunk


def _error_text(r: httpx.Response) -> str:
    try:
        err = r.json()["error"]
        return f"HTTP {r.status_code}: {err['message']} ({err['code']})"
    except (ValueError, KeyError, TypeError):
        return f"HTTP {r.status_code}: {r.text[:200]}"


class BulkImporter:
    """Imports a :class:`Library` into the server behind ``client`` (base URL and token set).

    Files go one at a time: the server spools each upload to disk before storing it, so
    parallel uploads would only contend for the same disk.
    """

    def __init__(self, client: httpx.Client, library: Library, reporter: Reporter) -> None:
        self.client = client
        self.library = library
        self.reporter = reporter

    def _check_server(self) -> None:
        try:
            r = self.client.get("/api/v1/assets", params={"limit": 1})
        except httpx.HTTPError as exc:
            raise ImportAborted(f"cannot reach {self.client.base_url}: {exc}") from exc
        if r.status_code in (401, 403):
            raise ImportAborted(f"the server refused the API token: {_error_text(r)}")
        if r.status_code >= 400:
            raise ImportAborted(f"the server answered {_error_text(r)}")

    def _existing(self, digest: str) -> str | None:
        """The id of an asset on the server with these bytes that did not error, if any."""
        r = self.client.get("/api/v1/assets", params={"content_hash": digest, "limit": 100})
        if r.status_code in (401, 403):
            raise ImportAborted(f"the server refused the API token: {_error_text(r)}")
        if r.status_code >= 400:
            raise httpx.HTTPStatusError(_error_text(r), request=r.request, response=r)
        live = [a for a in r.json()["data"] if a.get("status") != "errored"]
        return str(live[-1]["id"]) if live else None  # newest first: the last is the oldest

    def _upload(self, f: LibraryFile, path: Path, on_bytes: Callable[[int], None]) -> str:
        name = Path(f.name).name
        with path.open("rb") as src:
            r = self.client.post(
                "/api/v1/assets",
                files={"file": (name, _Reader(src, on_bytes))},  # type: ignore[dict-item]
                data={"title": Path(name).stem},
            )
        if r.status_code in (401, 403):
            raise ImportAborted(f"the server refused the API token: {_error_text(r)}")
        if r.status_code >= 400:
            raise httpx.HTTPStatusError(_error_text(r), request=r.request, response=r)
        return str(r.json()["data"]["id"])

    def run(self) -> ImportSummary:
        """Import every file; raises :class:`ImportAborted` when nothing more can be done."""
        self._check_server()
        files = self.library.files()
        summary = ImportSummary()
        self.reporter.begin(len(files), sum(f.size for f in files))
        seen: dict[str, str] = {}  # sha256 → name, within this run
        with tempfile.TemporaryDirectory(prefix="mediaplane-import-") as tmp:
            for index, f in enumerate(files, start=1):
                done = self._one(index, f, Path(tmp) / "fetched", seen, summary)
                if done < f.size:  # skipped or failed: the rest of its bytes count now
                    self.reporter.advance(f.size - done)
        return summary

    def _one(
        self,
        index: int,
        f: LibraryFile,
        scratch: Path,
        seen: dict[str, str],
        summary: ImportSummary,
    ) -> float:
        """Import one file; returns how much of its size the bar has been advanced by."""
        counted = 0.0

        def half(n: int) -> None:
            nonlocal counted
            counted += n / 2
            self.reporter.advance(n / 2)

        if f.size == 0:
            summary.failed.append((f.name, "the file is empty"))
            return counted
        digest = hashlib.sha256()
        try:
            self.reporter.file(index, f.name, "reading")

            def read_chunk(chunk: bytes) -> None:
                digest.update(chunk)
                half(len(chunk))

            path = self.library.read(f, scratch, read_chunk)
            hexdigest = digest.hexdigest()
            if hexdigest in seen:
                summary.skipped.append((f.name, f"same file as {seen[hexdigest]}"))
                return counted
            seen[hexdigest] = f.name
            existing = self._existing(hexdigest)
            if existing is not None:
                summary.skipped.append((f.name, f"already in as asset {existing}"))
                return counted
            self.reporter.file(index, f.name, "uploading")
            summary.imported.append((f.name, self._upload(f, path, half)))
            return counted
        except (httpx.HTTPError, StorageError, OSError) as exc:
            summary.failed.append((f.name, str(exc) or type(exc).__name__))
            return counted
        finally:
            scratch.unlink(missing_ok=True)
