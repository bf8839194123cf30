"""Fetching an import URL: connect only to addresses checked first, within one deadline.

The download goes through :class:`mediaplane.intake.GuardedTransport`: each connection
resolves its host once, checks every address and connects to a checked one. Redirects are
followed here, hop by hop, each hop's host resolved and checked again the same way. Every
socket operation is bounded by what is left of ``import_timeout_seconds``.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin

import httpx

from mediaplane.intake import ByteLimit, Deadline, GuardedTransport, IngestError, parse_import_url

_CONNECT_TIMEOUT = 30.0
_READ_TIMEOUT = 60.0
_CHUNK = 1 << 20
_DEADLINE_SLACK = 0.25


class ImportFailed(IngestError):
    """The URL could not be imported and retrying will not help; the message says why."""


class ImportTimedOut(ImportFailed):
    """The import took longer than ``import_timeout_seconds``."""


@dataclass(frozen=True)
class FetchLimits:
    """What bounds one import.

    :param max_bytes: the most bytes stored.
    :param timeout: seconds for the whole import, every redirect hop included.
    """

    allow: tuple[str, ...] = ()
    max_bytes: int = 20 * 1024**3
    timeout: float = 3600.0
    max_redirects: int = 5


def _timed_out(seconds: float) -> ImportTimedOut:
    return ImportTimedOut(
        f"The download took longer than the import time limit ({seconds:g} s); "
        "nothing was imported."
    )


def fetch_url(
    url: str,
    dest: Path,
    limits: FetchLimits,
    progress: Callable[[float], None] | None = None,
) -> tuple[int, str]:
    """Download ``url`` into the file ``dest``; returns (bytes, sha256 hex of them).

    Raises :class:`UrlRefused` (an address not allowed, at any hop),
    :class:`~mediaplane.intake.UploadTooLarge` (past ``limits.max_bytes``, counted as
    bytes arrive), :class:`ImportFailed` (HTTP error, empty, too many redirects, the
    deadline); ``httpx.HTTPError`` for network trouble worth a retry. ``dest`` holds
    nothing usable after an error; the caller removes it.
    """
    deadline = Deadline(limits.timeout, lambda: _timed_out(limits.timeout))
    timeout = httpx.Timeout(_CONNECT_TIMEOUT, read=_READ_TIMEOUT)
    try:
        with httpx.Client(
            transport=GuardedTransport(limits.allow, deadline),
            timeout=timeout,
            follow_redirects=False,
        ) as client:
            for _ in range(limits.max_redirects + 1):
                parse_import_url(url)
                headers = {"User-Agent": "Mediaplane-Import/0.1", "Accept-Encoding": "identity"}
                with client.stream("GET", url, headers=headers) as r:
                    if r.is_redirect:
                        url = urljoin(url, r.headers.get("location", ""))
                        continue
                    if r.status_code >= 400:
                        raise ImportFailed(
                            f"The URL answered HTTP {r.status_code}; nothing was imported."
                        )
                    return _save(r, dest, limits, deadline, progress)
    except httpx.TimeoutException:
        # A socket timeout cut short by the deadline is the whole import out of time.
        if deadline.at - time.monotonic() < _DEADLINE_SLACK:
            raise deadline.expired() from None
        raise
    raise ImportFailed("The URL redirected too many times.")


def _save(
    r: httpx.Response,
    dest: Path,
    limits: FetchLimits,
    deadline: Deadline,
    progress: Callable[[float], None] | None,
) -> tuple[int, str]:
    limit = ByteLimit(
        limits.max_bytes,
        "The file at the URL is larger than the import limit of {limit} bytes; "
        "nothing was imported.",
    )
    declared = r.headers.get("content-length")
    limit.declared(declared)
    total = int(declared) if declared and declared.isdigit() else 0
    digest = hashlib.sha256()
    with dest.open("wb") as f:
        for chunk in limit.chunks(r.iter_raw(_CHUNK)):
            deadline.bound(None)  # a server that drips bytes still ends on time
            f.write(chunk)
            digest.update(chunk)
            if total and progress is not None:
                progress(100.0 * limit.seen / total)
    if limit.seen == 0:
        raise ImportFailed("The URL returned an empty file.")
    return limit.seen, digest.hexdigest()
