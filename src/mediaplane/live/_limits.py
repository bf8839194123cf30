"""One admission rule for the ingest ports (RTMP, RTMPS, SRT): how many publisher
connections one port holds, in all and per source address, and how long a handshake may take.

Both servers ask :meth:`IngestLimits.admit` before they spend anything on a new peer (RTMP
at accept, SRT in libsrt's listen callback, before its stream id is authorized) and give the
place back with :meth:`Slot.release` when the connection ends, however it ends. A flood from
one address fills its own share, not the port. Thread-safe: SRT admits on libsrt's receive
thread and releases on the event loop.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

__all__ = ["IngestLimits", "Slot"]

TOO_MANY = "too_many_connections"
TOO_MANY_FROM_ADDRESS = "too_many_connections_from_address"


class Slot:
    """A connection's place under its :class:`IngestLimits`; :meth:`release` gives it back
    (once: a second call does nothing, so every path that ends a connection may call it)."""

    __slots__ = ("_limits", "address", "released")

    def __init__(self, limits: IngestLimits, address: str) -> None:
        self._limits = limits
        self.address = address
        self.released = False

    def release(self) -> None:
        self._limits._release(self)


@dataclass(frozen=True)
class Refusal:
    """Why :meth:`IngestLimits.admit` said no (``reason`` for the log line)."""

    reason: str


class IngestLimits:
    """Connections one ingest port holds at once, and the time a handshake may take.

    :param max_connections: connections held at once; more are refused at once.
    :param max_connections_per_address: the same, per remote IP address.
    :param handshake_timeout: seconds a peer has to complete its handshake (RTMP's
        C0/C1/C2, after TLS for RTMPS; SRT's from admission to accept).
    """

    def __init__(
        self,
        max_connections: int = 64,
        max_connections_per_address: int = 16,
        handshake_timeout: float = 5.0,
    ) -> None:
        if max_connections < 1 or max_connections_per_address < 1:
            raise ValueError("connection limits must be at least 1")
        if handshake_timeout <= 0:
            raise ValueError("handshake_timeout must be positive")
        self.max_connections = max_connections
        self.max_connections_per_address = max_connections_per_address
        self.handshake_timeout = handshake_timeout
        self._lock = threading.Lock()
        self._held = 0
        self._per_address: dict[str, int] = {}

    @property
    def held(self) -> int:
        """Connections holding a place now."""
        return self._held

    def held_from(self, address: str) -> int:
        """Connections from ``address`` holding a place now."""
        return self._per_address.get(address, 0)

    def admit(self, address: str) -> Slot | Refusal:
        """A place for a new connection from ``address``, or why there is none."""
        with self._lock:
            if self._held >= self.max_connections:
                return Refusal(TOO_MANY)
            count = self._per_address.get(address, 0)
            if count >= self.max_connections_per_address:
                return Refusal(TOO_MANY_FROM_ADDRESS)
            self._held += 1
            self._per_address[address] = count + 1
            return Slot(self, address)

    def _release(self, slot: Slot) -> None:
        with self._lock:
            if slot.released:
                return
            slot.released = True
            self._held -= 1
            left = self._per_address[slot.address] - 1
            if left:
                self._per_address[slot.address] = left
            else:
                del self._per_address[slot.address]
