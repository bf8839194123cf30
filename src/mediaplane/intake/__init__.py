"""Intake: how bytes may come in, shared by the catalog's upload route and ``ingest``.

Every upload body — multipart POST /api/v1/assets, tus PATCH, a URL import's download — is
read through one counter (:class:`ByteLimit`): bytes are counted as they arrive, never
trusting Content-Length, and the chunk that would pass the limit is refused before it is
stored (413, nothing kept). A multipart body is parsed straight into one temp file
(:func:`receive_form`). The SSRF guard (:func:`check_url`, :func:`checked_addresses`)
says which URLs and addresses a URL import or a webhook may reach, and
:class:`GuardedTransport` connects only to addresses it passed, every socket operation within
one :class:`Deadline` (URL imports and webhook deliveries send through it).

It sits below ``catalog`` and ``ingest`` (which builds tus uploads and URL imports on it
and re-exports its errors), so neither has to import the other for these.

Errors::

    IngestError
    ├── UrlRefused          the URL's scheme or address is not allowed (client error)
    ├── BodyCut             the client left before its request body ended
    └── UploadError         a request body we cannot take (``status``, ``code``, ``headers``)
        ├── UploadTooLarge  413: a body passed the size limit (counted as it arrives)
        └── InvalidForm     400: a multipart body we cannot take (``code`` says how)
"""

from __future__ import annotations

from ._body import (
    BodyCut,
    ByteLimit,
    InvalidForm,
    ReceivedFile,
    body_chunks,
    counted,
    read_body,
    receive_form,
    request_stream,
)
from ._errors import IngestError, UploadError, UploadTooLarge
from ._guarded import Deadline, GuardedTransport
from ._url import UrlRefused, address_allowed, check_url, checked_addresses, parse_import_url

__all__ = [
    "BodyCut",
    "ByteLimit",
    "Deadline",
    "GuardedTransport",
    "IngestError",
    "InvalidForm",
    "ReceivedFile",
    "UploadError",
    "UploadTooLarge",
    "UrlRefused",
    "address_allowed",
    "body_chunks",
    "check_url",
    "checked_addresses",
    "counted",
    "parse_import_url",
    "read_body",
    "receive_form",
    "request_stream",
]
