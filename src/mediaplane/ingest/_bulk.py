"""The libraries a bulk import (``mediaplane import --from``) reads: the video files under a
folder or an S3 prefix. :meth:`mediaplane.client.Client.import_library` hashes each one and
uploads what the server does not have yet.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from mediaplane.intake import IngestError
from mediaplane.storage import ObjectStore, StorageError, open_store

if TYPE_CHECKING:
    from collections.abc import Callable

#: File name extensions taken as video (lowercase).
VIDEO_EXTENSIONS = frozenset(
    {
        ".3gp", ".avi", ".f4v", ".flv", ".m2ts", ".m4v", ".mkv", ".mov", ".mp4", ".mpeg",
        ".mpg", ".mts", ".mxf", ".ogv", ".ts", ".vob", ".webm", ".wmv",
    }
)  # fmt: skip
CHUNK = 8 << 20  # bytes per read (and per ranged GET from S3)


class ImportAborted(IngestError):
    """The library cannot be read: not a folder, an unknown scheme, a prefix that cannot
    be listed."""


def is_video_name(name: str) -> bool:
    return Path(name).suffix.lower() in VIDEO_EXTENSIONS


@dataclass(frozen=True)
class LibraryFile:
    """One file of the library: ``name`` is its path under the folder or key under the prefix."""

    name: str
    size: int


class FolderLibrary:
    """A :class:`mediaplane.client.Library`: video files under a local folder, recursively
    (hidden entries and symlinked folders are skipped)."""

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
        """``f``'s own path; each chunk of it goes to ``on_chunk`` (``scratch`` is unused)."""
        path = self.root / f.name
        with path.open("rb") as src:
            while chunk := src.read(CHUNK):
                on_chunk(chunk)
        return path


class StoreLibrary:
    """A :class:`mediaplane.client.Library`: video objects under an object-store prefix (``s3://bucket/prefix?endpoint=…``)."""

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
        """``f`` fetched into ``scratch`` by ranged GETs; a store error is an OSError (one
        file's failure, as a local read error would be)."""
        with scratch.open("wb") as out:
            start = 0
            while start < f.size:
                try:
                    chunk = self.store.get_bytes(f.name, start, min(f.size, start + CHUNK))
                except StorageError as exc:
                    raise OSError(str(exc) or type(exc).__name__) from exc
                if not chunk:
                    break
                out.write(chunk)
                on_chunk(chunk)
                start += len(chunk)
        return scratch


def open_library(spec: str) -> FolderLibrary | StoreLibrary:
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
