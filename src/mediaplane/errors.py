"""Errors every domain shares, below all of them (imports nothing of Mediaplane).

:class:`NotFound` is the base of each domain's "no such thing" (``catalog.AssetNotFound``,
``ingest.UploadNotFound``, ``delivery.PlaybackNotFound``, …): one handler in
:mod:`mediaplane.http` answers every one of them with 404 and the usual JSON body, so no
router translates them itself. :class:`Forbidden` is the same for 403: a caller who may see
something but lacks the role (or scope) for what they asked.
"""

from __future__ import annotations

__all__ = ["Forbidden", "NotFound"]


class NotFound(Exception):
    """What a request named does not exist (or not yet): HTTP 404 with ``code`` and
    ``message`` (said to the client, so it names no internals) and ``headers``."""

    code = "not_found"
    #: Headers the 404 carries (``Retry-After`` for what will exist soon).
    headers: dict[str, str] = {}  # never mutated: replaced per class or instance

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Forbidden(Exception):
    """The caller may see what they named but not do this with it: HTTP 403 with ``code``
    (``insufficient_scope``, ``insufficient_role``, ``insufficient_channel_role``, …) and
    ``message``."""

    def __init__(self, message: str, code: str = "forbidden") -> None:
        super().__init__(message)
        self.message = message
        self.code = code
