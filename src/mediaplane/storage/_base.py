"""The object-store interface, its value type, errors and key rules."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol, runtime_checkable

MAX_KEY_LENGTH = 1024
_KEY_CHARS = re.compile(r"[A-Za-z0-9._/=-]+")


class StorageError(Exception):
    """Root of every error raised by :mod:`mediaplane.storage`."""


class ObjectNotFound(StorageError):
    """No object is stored under the requested key."""


class InvalidKey(StorageError, ValueError):
    """A key or prefix breaks the key rules of :func:`validate_key`."""


@dataclass(frozen=True)
class ObjectInfo:
    """Metadata of one stored object.

    :param key: the object's key inside the store.
    :param size: size in bytes.
    :param etag: strong entity tag, without the surrounding quotes.
    :param modified: last modification time, tz-aware UTC.
    """

    key: str
    size: int
    etag: str
    modified: datetime


#: Areas (see :meth:`ObjectStore.area`) live under prefixes starting with this mark; ``~``
#: is not a key character, so no key can name an area's objects and no listing shows them.
AREA_MARK = "~"


@runtime_checkable
class ObjectStore(Protocol):
    """A flat key → bytes store; keys use ``/`` to group objects into prefixes.

    Ranges are ``[start, end)`` in bytes and are clamped to the object: a range past
    the end returns fewer bytes, or none.
    """

    url: str

    def put_file(self, key: str, path: Path) -> ObjectInfo:
        """Store the local file ``path`` under ``key``, streaming it."""
        ...

    def put_bytes(self, key: str, data: bytes) -> ObjectInfo:
        """Store ``data`` under ``key``."""
        ...

    def get_bytes(self, key: str, start: int = 0, end: int | None = None) -> bytes:
        """Return bytes ``[start, end)`` of the object; raises :class:`ObjectNotFound`."""
        ...

    def download(self, key: str, path: Path) -> None:
        """Stream the object into the local file ``path`` (replaced atomically)."""
        ...

    def stat(self, key: str) -> ObjectInfo:
        """Return the object's metadata; raises :class:`ObjectNotFound`."""
        ...

    def exists(self, key: str) -> bool:
        """Whether an object is stored under ``key``."""
        ...

    def delete(self, key: str) -> None:
        """Delete the object; a missing key is not an error."""
        ...

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object under ``prefix`` (non-empty, ends with ``/``); return the count."""
        ...

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        """Yield every object under ``prefix`` (``""`` or ending with ``/``), in no set order."""
        ...

    def local_path(self, key: str) -> Path | None:
        """Return the object's real file path (for sendfile), or None on remote stores."""
        ...

    def iter_range(
        self, key: str, start: int = 0, end: int | None = None, chunk_size: int = 1 << 20
    ) -> AsyncIterator[bytes]:
        """Yield bytes ``[start, end)`` in chunks of about ``chunk_size``.

        :class:`ObjectNotFound` is raised by the first ``__anext__``.
        """
        ...

    def compose(
        self, key: str, sources: Sequence[tuple[str, int]], *, source: ObjectStore | None = None
    ) -> ObjectInfo:
        """Store under ``key`` the objects ``(key, size)`` of ``source`` (this store by
        default, or one of its :meth:`area` stores) one after the other; the sources stay.
        ``size`` is each object's size (as :meth:`list` gives it): it plans the parts.
        Inside the backend where it can (S3: one multipart upload of part copies), else
        read back through this process.

        No sources make an empty object. Raises :class:`StorageError` when a source is
        missing or holds fewer bytes.
        """
        ...

    def area(self, name: str) -> ObjectStore:
        """A store for work in progress beside this one, under the reserved prefix
        ``~name/`` (the same directory tree or bucket, so :meth:`compose` from it stays
        inside the backend). Its objects are invisible to this store: no key reaches them
        and no listing shows them.

        :param name: one segment of key characters (``staged``).
        """
        ...


def validate_key(key: str) -> str:
    """Return ``key`` unchanged if it is a valid object key, else raise :class:`InvalidKey`.

    A key is 1 to 1024 characters from ``[A-Za-z0-9._/=-]``, split by ``/`` into
    non-empty segments that are neither ``.`` nor ``..``; it never starts with ``/``.
    """
    if not key:
        raise InvalidKey("object key is empty")
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidKey(f"object key is {len(key)} characters long; the limit is 1024")
    if "\x00" in key:
        raise InvalidKey(f"object key {key!r} contains a NUL character")
    if "\\" in key:
        raise InvalidKey(f"object key {key!r} contains a backslash; separate segments with '/'")
    if key.startswith("/"):
        raise InvalidKey(f"object key {key!r} starts with '/'; keys are relative")
    if _KEY_CHARS.fullmatch(key) is None:
        raise InvalidKey(f"object key {key!r} has characters outside [A-Za-z0-9._/=-]")
    for segment in key.split("/"):
        if segment == "":
            raise InvalidKey(f"object key {key!r} has an empty segment")
        if segment in (".", ".."):
            raise InvalidKey(f"object key {key!r} has a {segment!r} segment")
    return key


def validate_prefix(prefix: str, *, allow_empty: bool) -> str:
    """Return ``prefix`` if it is ``""`` (when allowed) or a valid key followed by ``/``."""
    if prefix == "" and allow_empty:
        return prefix
    if not prefix.endswith("/"):
        raise InvalidKey(f"prefix {prefix!r} must be non-empty and end with '/'")
    validate_key(prefix[:-1])
    return prefix


def check_range(start: int, end: int | None) -> None:
    """Raise ValueError unless ``0 <= start <= end``."""
    if start < 0:
        raise ValueError(f"range start {start} is negative")
    if end is not None and end < start:
        raise ValueError(f"range end {end} is before its start {start}")


def validate_area(name: str) -> str:
    """Return ``name`` if it can name an area (one key segment), else raise :class:`InvalidKey`."""
    validate_key(name)
    if "/" in name:
        raise InvalidKey(f"area name {name!r} must be one segment")
    return name
