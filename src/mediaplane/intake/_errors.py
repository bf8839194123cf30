"""The errors both the catalog's upload route and ingest's tus uploads answer with."""

from __future__ import annotations


class IngestError(Exception):
    """Root of ingest errors."""


class UploadError(IngestError):
    """Root of resumable-upload errors; ``status`` and ``code`` are the HTTP answer."""

    status = 400
    code = "invalid_upload"
    #: Headers the HTTP answer carries besides the JSON error.
    headers: dict[str, str] = {}  # never mutated: replaced per class

    def __init__(self, message: str, *, offset: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset


class UploadTooLarge(UploadError):
    """413. The rest of the body is never read: the connection cannot carry another
    request, so the answer says it closes."""

    status, code = 413, "payload_too_large"
    headers = {"Connection": "close"}
