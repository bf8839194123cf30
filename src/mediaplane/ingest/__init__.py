"""Ingest: getting sources in — URL imports with SSRF protection, and tus 1.0 resumable
uploads on /api/v1/uploads (state in the database, bytes straight into the object store).

Every upload body — multipart POST /api/v1/assets, tus PATCH, a URL import's download — is
read through one counter (``_body.ByteLimit``): bytes are counted as they arrive, never
trusting Content-Length, and the chunk that would pass the limit is refused before it is
stored (413, nothing kept). A URL import resolves each host once, checks every address,
and connects to a checked one (``_fetch``), within one ``import_timeout_seconds`` deadline.

Errors::

    IngestError
    ├── UrlRefused          the URL's scheme or address is not allowed (client error)
    ├── ImportFailed        a URL import cannot succeed (HTTP error, empty, redirects)
    │   └── ImportTimedOut  it took longer than import_timeout_seconds
    ├── ImportAborted       a bulk import's library cannot be read (not a folder, listing)
    └── UploadError         a resumable-upload request cannot be served (``status``, ``code``)
        ├── UploadNotFound  404
        ├── UploadGone      410: expired, cancelled or failed
        ├── UploadForbidden 403: PATCH on a final (concatenated) upload
        ├── UploadConflict  409: a final names an unfinished or already-used partial
        ├── OffsetMismatch  409
        ├── UploadLocked    423: another request is writing to it
        ├── UploadTooLarge  413: a body passed the size limit (counted as it arrives)
        └── InvalidForm     400: a multipart body we cannot take (``code`` says how)
"""

from __future__ import annotations

from ._body import ByteLimit, InvalidForm, ReceivedFile, body_chunks, read_body, receive_form
from ._bulk import ImportAborted, LibraryFile, open_library
from ._fetch import FetchLimits, ImportFailed, ImportTimedOut, fetch_url
from ._uploads import (
    OffsetMismatch,
    Upload,
    UploadConcat,
    UploadConflict,
    UploadError,
    UploadForbidden,
    UploadGone,
    UploadLocked,
    UploadNotFound,
    UploadStatus,
    UploadTooLarge,
    UploadView,
    create_upload,
    get_upload,
    sweep_expired,
)
from ._url import IngestError, UrlRefused, address_allowed, check_url, checked_addresses

__all__ = [
    "ByteLimit",
    "FetchLimits",
    "ImportAborted",
    "ImportFailed",
    "ImportTimedOut",
    "InvalidForm",
    "IngestError",
    "LibraryFile",
    "OffsetMismatch",
    "ReceivedFile",
    "Upload",
    "UploadConcat",
    "UploadConflict",
    "UploadError",
    "UploadForbidden",
    "UploadGone",
    "UploadLocked",
    "UploadNotFound",
    "UploadStatus",
    "UploadTooLarge",
    "UploadView",
    "UrlRefused",
    "address_allowed",
    "body_chunks",
    "check_url",
    "checked_addresses",
    "create_upload",
    "fetch_url",
    "get_upload",
    "open_library",
    "read_body",
    "receive_form",
    "sweep_expired",
]


def uploads_router() -> object:
    """The /api/v1/uploads tus router (imported lazily: it pulls in FastAPI and accounts)."""
    from ._tus import router

    return router


__all__ += ["uploads_router"]
