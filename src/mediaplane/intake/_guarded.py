"""Connections only to checked addresses, every socket operation within one deadline.

httpx would resolve a host itself when it connects, after our check (a second answer from a
rebinding DNS server would then be the one used). :class:`GuardedTransport` is httpx's
transport over a connection pool whose network backend is :class:`GuardedBackend`: for every
new connection it resolves the host once, checks every address (:func:`checked_addresses`)
and connects to a checked one; TLS still verifies and sends SNI for the name, and the Host
header is the name. Every connect, read and write is cut to what is left of a
:class:`Deadline`, so a server that hangs or drips bytes ends on time. URL imports and webhook
deliveries both send through it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

import httpcore
import httpx

from ._url import checked_addresses


class Deadline:
    """``seconds`` from now; past it, :meth:`bound` raises what ``expired`` makes."""

    def __init__(self, seconds: float, expired: Callable[[], Exception]) -> None:
        self.seconds = seconds
        self.at = time.monotonic() + seconds
        self.expired = expired

    def bound(self, timeout: float | None) -> float:
        """``timeout`` cut to what is left; raises ``expired()`` when nothing is."""
        left = self.at - time.monotonic()
        if left <= 0:
            raise self.expired()
        return left if timeout is None else min(timeout, left)


class _BoundedStream(httpcore.NetworkStream):
    """A network stream whose every read and write ends by the deadline."""

    def __init__(self, inner: httpcore.NetworkStream, deadline: Deadline) -> None:
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
    """Connects to ``host`` only through addresses :func:`checked_addresses` passed
    (besides the public internet, the networks in ``allow``)."""

    def __init__(self, allow: Iterable[str], deadline: Deadline) -> None:
        self.allow = tuple(allow)
        self.deadline = deadline

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
            return _BoundedStream(stream, self.deadline)
        assert error is not None  # checked_addresses returns at least one address
        raise error


class GuardedTransport(httpx.HTTPTransport):
    """httpx's transport over a pool whose connections a :class:`GuardedBackend` makes."""

    def __init__(self, allow: Iterable[str], deadline: Deadline) -> None:
        super().__init__(trust_env=False)
        # httpx offers no way to name the pool's network backend: build the same pool
        # (httpx's TLS context, no proxy) over ours.
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            network_backend=GuardedBackend(allow, deadline),
        )
