"""Fetching an import URL: connect only to addresses checked first, within one deadline.

httpx would resolve the host itself when it connects, after our check (a second answer
from a rebinding DNS server would then be the one used). Here the connection pool's
network backend is ours: for every new connection it resolves the host once, checks
every address (:func:`checked_addresses`) and connects to a checked one; TLS still
verifies and sends SNI for the name, and the Host header is the name. Redirects are
followed here, hop by hop, each hop's host resolved and checked again the same way.
Every socket operation is bounded by what is left of ``import_timeout_seconds``.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpcore
import httpx

from mediaplane.intake import ByteLimit, IngestError, checked_addresses, parse_import_url

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


class _Deadline:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.at = time.monotonic() + seconds

    def timed_out(self) -> ImportTimedOut:
        return ImportTimedOut(
            f"The download took longer than the import time limit ({self.seconds:g} s); "
            "nothing was imported."
        )

    def bound(self, timeout: float | None) -> float:
        """``timeout`` cut to what is left; raises :class:`ImportTimedOut` when none is."""
        left = self.at - time.monotonic()
        if left <= 0:
            raise self.timed_out()
        return left if timeout is None else min(timeout, left)


class _BoundedStream(httpcore.NetworkStream):
    """A network stream whose every read and write ends by the import's deadline."""

    def __init__(self, inner: httpcore.NetworkStream, deadline: _Deadline) -> None:
        self._inner, self._deadline = inner, deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, self._deadline.bound(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, self._deadline.bound(timeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        tls = self._inner.start_tls(ssl_context, server_hostname, self._deadline.bound(timeout))
        return _BoundedStream(tls, self._deadline)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class GuardedBackend(httpcore.SyncBackend):
    """Connects to ``host`` only through addresses :func:`checked_addresses` passed."""

    def __init__(self, allow: Iterable[str], deadline: _Deadline) -> None:
        self.allow = tuple(allow)
        self.deadline = deadline
        self.connected: list[tuple[str, str, int]] = []

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        error: Exception | None = None
        for addr in checked_addresses(host, port, self.allow):
            try:
                stream = super().connect_tcp(
                    str(addr), port, self.deadline.bound(timeout), local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
                continue
            self.connected.append((host, str(addr), port))
            return _BoundedStream(stream, self.deadline)
        assert error is not None  # checked_addresses returns at least one address
        raise error


class GuardedTransport(httpx.HTTPTransport):
    """httpx's transport over a pool whose connections :class:`GuardedBackend` makes."""

    def __init__(self, backend: GuardedBackend) -> None:
        super().__init__(trust_env=False)
        # httpx offers no way to name the pool's network backend: build the same pool
        # (httpx's TLS context, no proxy) over ours.
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False), network_backend=backend
        )
        self.backend = backend


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
    deadline = _Deadline(limits.timeout)
    backend = GuardedBackend(limits.allow, deadline)
    timeout = httpx.Timeout(_CONNECT_TIMEOUT, read=_READ_TIMEOUT)
    try:
        with httpx.Client(
            transport=GuardedTransport(backend), timeout=timeout, follow_redirects=False
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
            raise deadline.timed_out() from None
        raise
    raise ImportFailed("The URL redirected too many times.")


def _save(
    r: httpx.Response,
    dest: Path,
    limits: FetchLimits,
    deadline: _Deadline,
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
