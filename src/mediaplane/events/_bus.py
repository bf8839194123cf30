"""The bus interface: one small Protocol, one module per adapter, chosen by URL scheme."""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol
from urllib.parse import parse_qs, urlsplit

import structlog

from ._errors import EventsError

if TYPE_CHECKING:
    from mediaplane.db import Database

    from ._event import Event


log = structlog.get_logger("mediaplane.events")

#: A group member that stops answering (it died) loses its fetched, unacknowledged events
#: to another member after this long: Redis Streams' claim idle time, NATS JetStream's
#: ``ack_wait``, Kafka's session timeout. A live member tells the bus it is still working
#: on them every third of it, so a handler may take longer without the events moving.
#: ``?ack_wait=<seconds>`` on the bus URL sets it (Kafka brokers refuse less than their
#: ``group.min.session.timeout.ms``, 6 s by default).
ACK_WAIT_SECONDS = 6.0


def ack_wait(url: str) -> float:
    """The URL's ``ack_wait`` query parameter in seconds, or :data:`ACK_WAIT_SECONDS`.

    :raises EventsError: not a positive number.
    """
    raw = parse_qs(urlsplit(url).query).get("ack_wait", [None])[0]
    if raw is None:
        return ACK_WAIT_SECONDS
    try:
        seconds = float(raw)
    except ValueError:
        seconds = 0.0
    if not seconds > 0:
        raise EventsError(f"ack_wait={raw!r} in the bus URL: expected seconds above 0")
    return seconds


class Heartbeat:
    """Calls ``beat`` every ``interval`` seconds in a daemon thread until :meth:`stop`: a
    group member telling the bus it is still handling what it fetched. A failure is
    logged and the next beat tries again (the bus may be back by then)."""

    def __init__(self, interval: float, beat: Callable[[], object], name: str) -> None:
        self.interval, self.beat = interval, beat
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.beat()
            except Exception as exc:  # (the bus's own errors: it may be down a while)
                log.warning("events.heartbeat_failed", error=repr(exc))

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(self.interval + 5)


@dataclass(frozen=True)
class Delivery:
    """An event as a subscription received it; ``token`` is the bus's own message id."""

    event: Event
    token: str


class Subscription(Protocol):
    """A reader of the bus: a consumer in a group (the group shares the work, each event
    goes to one member), or, without a group, a tail that sees every event."""

    def fetch(self, timeout: float, limit: int = 100) -> list[Delivery]:
        """The next events, waiting up to ``timeout`` seconds for one; [] when none came."""
        ...

    def ack(self, deliveries: Sequence[Delivery]) -> None:
        """Handled: the group will not deliver these again."""
        ...

    def close(self) -> None: ...


class Bus(Protocol):
    """Where the relay publishes the outbox's events, in order."""

    #: For logs and /readyz: the adapter and its address, no password.
    description: str

    def publish(self, events: Sequence[Event]) -> None:
        """Hand ``events`` to the bus in order; raise :class:`BusUnavailable` if it cannot
        take them all (the relay keeps them in the outbox and tries again)."""
        ...

    def subscribe(
        self, group: str | None, *, consumer: str | None = None, from_start: bool = False
    ) -> Subscription:
        """A reader: in ``group`` (created on first use: at the stream's end, or at its
        start with ``from_start``), or a tail of every event when ``group`` is None."""
        ...

    def close(self) -> None: ...


#: Builds a bus from its URL; ``database`` is the outbox's (the in-process bus reads it).
BusFactory = Callable[[str, "Database | None", str], Bus]

_ADAPTERS: dict[str, BusFactory] = {}
#: Adapters imported on first use (each registers its schemes): their clients (nats-py with
#: aiohttp, redis-py, confluent-kafka) cost every process that never opens them about a
#: second of start-up between them.
_LAZY = {"redis": "_redis", "rediss": "_redis", "nats": "_nats", "kafka": "_kafka"}


def register(scheme: str, factory: BusFactory) -> None:
    """Make ``scheme://`` URLs open ``factory``'s bus."""
    _ADAPTERS[scheme] = factory


def open_bus(
    url: str | None, database: Database | None = None, namespace: str = "mediaplane"
) -> Bus:
    """The bus ``url`` names: None or ``memory://`` the in-process bus (its log is the
    outbox table in ``database``), ``redis://`` Redis Streams, ``nats://`` NATS
    JetStream, ``kafka://`` Kafka.

    :param namespace: names the stream (``<namespace>:events``), like the job queues.
    :raises EventsError: a scheme no adapter serves.
    """
    scheme = urlsplit(url or "memory://").scheme.lower()
    if scheme not in _ADAPTERS and scheme in _LAZY:
        importlib.import_module(f"{__package__}.{_LAZY[scheme]}")
    factory = _ADAPTERS.get(scheme)
    if factory is None:
        known = ", ".join(f"{s}://" for s in sorted({*_ADAPTERS, *_LAZY}))
        raise EventsError(f"no event bus for {scheme!r} URLs; expected one of {known}")
    return factory(url or "memory://", database, namespace)
