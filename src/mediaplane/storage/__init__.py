"""Object storage: one :class:`ObjectStore` interface, a local-directory and an S3 adapter.

:func:`open_store` picks the adapter from a URL: ``file:///abs/dir`` or a plain path
gives a :class:`LocalStore`, ``s3://bucket/prefix?endpoint=...&region=...`` an
:class:`S3Store`.

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
    StagedWriter,
    StorageError,
    validate_key,
)
from ._local import LocalStore
from ._s3 import S3Store

__all__ = [
    "InvalidKey",
    "LocalStore",
    "ObjectInfo",
    "ObjectNotFound",
    "ObjectStore",
    "S3Store",
    "StagedWriter",
    "StorageError",
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
