"""Object storage: one :class:`ObjectStore` interface, a local-directory and an S3 adapter.

:func:`open_store` picks the adapter from a URL: ``file:///abs/dir`` or a plain path
gives a :class:`LocalStore`, ``s3://bucket/prefix?endpoint=...&region=...`` an
:class:`S3Store`. A store holds objects only: put, get (whole, a range, streamed), stat,
list, delete, compose (concatenation inside the backend) and areas (hidden sibling stores
for work in progress). What an upload does with them (staging, resuming) is
:mod:`mediaplane.ingest`'s.

Errors::

    StorageError
    ├── ObjectNotFound
    └── InvalidKey (also a ValueError)
"""

from __future__ import annotations

from collections.abc import Callable

from mediaplane.config import redact_url

from ._base import (
    InvalidKey,
    ObjectInfo,
    ObjectNotFound,
    ObjectStore,
    StorageError,
    validate_key,
)
from ._local import DIR_MODE, FILE_MODE, LocalStore, append_file, make_dirs
from ._s3 import S3Store

__all__ = [
    "DIR_MODE",
    "FILE_MODE",
    "InvalidKey",
    "LocalStore",
    "ObjectInfo",
    "ObjectNotFound",
    "ObjectStore",
    "S3Store",
    "StorageError",
    "append_file",
    "make_dirs",
    "open_store",
    "validate_key",
]

_ADAPTERS: dict[str, Callable[[str], ObjectStore]] = {
    "file": LocalStore.from_url,
    "s3": S3Store.from_url,
}


def open_store(url: str) -> ObjectStore:
    """Open the store named by ``url``.

    :param url: ``file:///abs/dir``, a filesystem path, or
        ``s3://bucket[/prefix][?endpoint=http://host:port&region=name]``.
    """
    if not url:
        raise StorageError("storage URL is empty; use a path, file:///abs/dir or s3://bucket")
    scheme = url.split("://", 1)[0].lower() if "://" in url else "file"
    adapter = _ADAPTERS.get(scheme)
    if adapter is None:
        known = ", ".join(f"{name}://" for name in sorted(_ADAPTERS))
        raise StorageError(
            f"unsupported storage URL {redact_url(url)!r}; use one of {known} or a path"
        )
    return adapter(url)
