"""Events: domain events (``video.asset.ready``, …) written to an outbox table in the
transaction of the change that caused them (:func:`emit`), relayed to a bus in order by
one :class:`Relay` per deployment, read back with :func:`consume`.

The bus is chosen by URL (:func:`open_bus`, ``MEDIAPLANE_EVENTS_URL``): the in-process bus
by default (the relay calls this process's listeners; other processes read the outbox
table), Redis Streams for ``redis://``, NATS JetStream for ``nats://``, Kafka for
``kafka://`` (consumer groups share the work). Every event is
``{"type", "id", "created_at", "object": {"type", "id"}, "data"}``, ``data`` the resource
as the API returns it; delivery is at least once, ordered per object, so consumers
deduplicate by ``id``.

Errors::

    EventsError
    └── BusUnavailable   the bus cannot be reached or refused a write (events wait)
"""

from __future__ import annotations

from . import _memory  # noqa: F401  (registers memory://; the others load when first opened)
from ._bus import Bus, Delivery, Subscription, open_bus, register
from ._consume import consume
from ._errors import BusUnavailable, EventsError
from ._event import Event, EventType, matches
from ._memory import InProcessBus
from ._model import OutboxRow
from ._outbox import backlog, emit, prune
from ._relay import Relay

__all__ = [
    "Bus",
    "BusUnavailable",
    "Delivery",
    "Event",
    "EventType",
    "EventsError",
    "InProcessBus",
    "OutboxRow",
    "Relay",
    "Subscription",
    "backlog",
    "consume",
    "emit",
    "matches",
    "open_bus",
    "prune",
    "register",
]
