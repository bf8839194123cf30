"""Errors of the live package (the tree is drawn in the package docstring)."""

from __future__ import annotations

from mediaplane.errors import NotFound

__all__ = ["InvalidProtection", "LiveError", "LiveStreamNotFound", "PublishRefused"]


class LiveError(Exception):
    """Root of live errors."""


class LiveStreamNotFound(LiveError, NotFound):
    """No live stream (or playback id of one) by that id, or one the caller may not see
    (404 ``not_found``)."""


class InvalidProtection(LiveError, ValueError):
    """A protection policy a live stream cannot have (400 ``invalid_protection``)."""


class PublishRefused(LiveError):
    """A publisher may not go live on this stream now.

    ``code``: ``unknown_stream`` (deleted, or never existed), ``disabled`` (the owner
    disabled the stream), ``already_publishing`` (another publisher is connected to it).
    """

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
