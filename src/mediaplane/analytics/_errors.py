"""The analytics package's exceptions (the tree is drawn in its ``__init__``)."""

from __future__ import annotations

__all__ = ["AnalyticsError", "InvalidBeacon", "InvalidCmcd", "LakeBusy", "RateLimited"]


class AnalyticsError(Exception):
    """Root of the analytics errors."""


class InvalidBeacon(AnalyticsError):
    """A beacon batch's envelope is not valid JSON or breaks the schema (400)."""


class InvalidCmcd(AnalyticsError, ValueError):
    """A CMCD field breaks the CTA-5004 grammar or a bound (its data is not recorded)."""


class RateLimited(AnalyticsError):
    """A viewer or an address sent more batches than its share (429 with Retry-After)."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class LakeBusy(AnalyticsError):
    """The lake's buffer is full (its writes are behind): the batch is not taken (503,
    the player sends it again later)."""
