"""Ingest: getting sources in — URL imports with SSRF protection, and tus 1.0 resumable
uploads on /api/v1/uploads (state in the database, bytes straight into the object store).

Errors::

    IngestError
    ├── UrlRefused          the URL's scheme or address is not allowed (client error)
    ├── ImportAborted       a bulk import cannot go on (token, server or library)
    └── UploadError         a resumable-upload request cannot be served (``status``, ``code``)
        ├── UploadNotFound  404
        ├── UploadGone      410: expired, cancelled or failed
        ├── UploadForbidden 403: PATCH on a final (concatenated) upload
        ├── UploadConflict  409: a final names an unfinished or already-used partial
        ├── OffsetMismatch  409
        ├── UploadLocked    423: another request is writing to it
        └── UploadTooLarge  413
"""

from __future__ import annotations

from ._bulk import (
    BulkImporter,
    ImportAborted,
    ImportSummary,
    LibraryFile,
    Reporter,
    open_library,
)
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
from ._url import IngestError, UrlRefused, address_allowed, check_url

__all__ = [
    "BulkImporter",
    "ImportAborted",
    "ImportSummary",
    "IngestError",
    "LibraryFile",
    "OffsetMismatch",
    "Reporter",
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
    "check_url",
    "create_upload",
    "get_upload",
    "open_library",
    "sweep_expired",
]


def uploads_router() -> object:
    """The /api/v1/uploads tus router (imported lazily: it pulls in FastAPI and accounts)."""
    from ._tus import router

    return router


__all__ += ["uploads_router"]
