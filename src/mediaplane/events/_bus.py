"""The bus interface: one small Protocol, one module per adapter, chosen by URL scheme."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlsplit

from ._errors import EventsError

if TYPE_CHECKING:
    from mediaplane.db import Database

    from ._event import Event


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
    factory = _ADAPTERS.get(scheme)
    if factory is None:
        known = ", ".join(f"{s}://" for s in sorted(_ADAPTERS))
        raise EventsError(f"no event bus for {scheme!r} URLs; expected one of {known}")
    return factory(url or "memory://", database, namespace)
