"""Ingest: getting sources in — URL imports with SSRF protection, and tus 1.0 resumable
uploads on /api/v1/uploads: the router (``_tus``) parses and answers HTTP, the upload
service (``_uploads``: the record and its lock; ``_receive``: a chunk's bytes) does the
work, and ``_staging`` keeps the bytes in the object store until they become an asset's
source (files appended in place on a local store, part objects composed on S3).

Every upload body is read through :mod:`mediaplane.intake`'s one counter (bytes counted
as they arrive; the chunk that would pass the limit is refused before it is stored), and a
URL import passes its SSRF guard: it resolves each host once, checks every address, and
connects to a checked one (``_fetch``), within one ``import_timeout_seconds`` deadline.

Errors (``IngestError``, ``UrlRefused``, ``BodyCut``, ``UploadError``, ``UploadTooLarge`` and
``InvalidForm`` are defined in :mod:`mediaplane.intake` and re-exported here)::

    IngestError
    ├── UrlRefused          the URL's scheme or address is not allowed (client error)
    ├── ImportFailed        a URL import cannot succeed (HTTP error, empty, redirects)
    │   └── ImportTimedOut  it took longer than import_timeout_seconds
    ├── ImportAborted       a bulk import's library cannot be read (not a folder, listing)
    ├── BodyCut             the client left before its request body ended
    └── UploadError         a resumable-upload request cannot be served (``status``, ``code``)
        ├── UploadNotFound  404 (also a mediaplane.errors.NotFound)
        ├── UploadGone      410: expired, cancelled or failed
        ├── UploadForbidden 403: PATCH on a final (concatenated) upload
        ├── UploadConflict  409: a final names an unfinished or already-used partial
        ├── OffsetMismatch  409
        ├── UploadLocked    423: another request is writing to it
        ├── UploadTooLarge  413: a body passed the size limit (counted as it arrives)
        ├── ChecksumMismatch 460: the chunk's digest is not Upload-Checksum's (discarded)
        ├── IncompleteChunk 400: a chunk sent with a checksum was cut off (discarded)
        ├── BadChecksum     400: an Upload-Checksum we cannot check (``code`` says how)
        └── InvalidForm     400: a multipart body we cannot take (``code`` says how)
"""

from __future__ import annotations

from mediaplane.intake import (
    BodyCut,
    IngestError,
    InvalidForm,
    UploadError,
    UploadTooLarge,
    UrlRefused,
)

from ._bulk import ImportAborted, LibraryFile, open_library
from ._fetch import FetchLimits, ImportFailed, ImportTimedOut, fetch_url
from ._jobs import import_url
from ._tus import router
from ._uploads import (
    OffsetMismatch,
    Upload,
    UploadConcat,
    UploadConflict,
    UploadForbidden,
    UploadGone,
    UploadLocked,
    UploadNotFound,
    UploadStatus,
    UploadView,
    create_upload,
    get_upload,
    sweep_expired,
)

__all__ = [
    "BodyCut",
    "FetchLimits",
    "ImportAborted",
    "ImportFailed",
    "ImportTimedOut",
    "InvalidForm",
    "IngestError",
    "LibraryFile",
    "OffsetMismatch",
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
    "create_upload",
    "fetch_url",
    "get_upload",
    "import_url",
    "open_library",
    "router",
    "sweep_expired",
]
