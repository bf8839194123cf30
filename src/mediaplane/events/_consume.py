"""The consumer library: iterate over the bus's events, acknowledged as you go."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mediaplane.db import Database

from ._bus import open_bus
from ._event import matches

if TYPE_CHECKING:
    import threading
    from collections.abc import Iterable, Iterator

    from ._event import Event


def consume(
    url: str | None,
    group: str | None = None,
    *,
    types: Iterable[str] | None = None,
    database_url: str | None = None,
    namespace: str = "mediaplane",
    consumer: str | None = None,
    from_start: bool = False,
    stop: threading.Event | None = None,
    poll_seconds: float = 1.0,
) -> Iterator[Event]:
    """Events from the bus at ``url`` (``MEDIAPLANE_EVENTS_URL``), in order, forever (or
    until ``stop`` is set).

    In a ``group`` each event goes to one of the group's consumers, and it is acknowledged
    once the loop has asked for every event fetched with it: a consumer that dies earlier
    gets them again after a restart under the same name, or another member does after
    the bus's ``ack_wait`` (6 s; a slow handler in a live consumer keeps them, the
    subscription tells the bus it is still working), so handle events idempotently by
    ``event.id``. Without a group: a tail of every event, nothing acked.

    :param url: None or ``memory://`` for the embedded bus: the outbox table at
        ``database_url`` is read directly (every event, no groups across processes).
    :param types: patterns such as ``video.asset.*``; None: every type. Others are acked
        and skipped.
    :param consumer: this member's name in the group; the same name after a restart gets
        its unacknowledged events back at once.
    :param from_start: a new group (or a tail) begins at the oldest event, not the newest.
    """
    patterns = list(types) if types is not None else None
    db = Database(database_url) if database_url is not None else None
    bus = open_bus(url, db, namespace)
    try:
        sub = bus.subscribe(group, consumer=consumer, from_start=from_start)
        try:
            while stop is None or not stop.is_set():
                batch = sub.fetch(poll_seconds)
                for delivery in batch:
                    if matches(delivery.event.type, patterns):
                        yield delivery.event
                sub.ack(batch)
        finally:
            sub.close()
    finally:
        bus.close()
        if db is not None:
            db.dispose()
