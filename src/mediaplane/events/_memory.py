"""The in-process bus (the embedded default, no server): the relay hands each event to the
listeners of its own process; any process reads the log itself from the outbox table."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import structlog

from ._bus import Delivery, register
from ._errors import EventsError
from ._outbox import last_seq, read_after

if TYPE_CHECKING:
    from mediaplane.db import Database

    from ._event import Event

log = structlog.get_logger("mediaplane.events")

#: How often a table reader looks for new rows while it waits.
POLL_SECONDS = 0.2

Listener = Callable[["Event"], object]


class InProcessBus:
    """Publishing calls this process's listeners in order; subscribing reads the outbox.

    A subscription here is a tail of the table (every event, from now or from the start):
    the in-process bus keeps no consumer groups across processes. A listener that raises
    is logged and skipped; the event still counts as published.
    """

    def __init__(self, database: Database | None) -> None:
        self.database = database
        self.description = "in-process"
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()

    def listen(self, listener: Listener) -> None:
        """Call ``listener`` with every event this process's relay publishes."""
        with self._lock:
            self._listeners.append(listener)

    def publish(self, events: Sequence[Event]) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for event in events:
            for listener in listeners:
                try:
                    listener(event)
                except Exception:
                    log.exception("events.listener_failed", event_id=event.id)

    def subscribe(
        self, group: str | None, *, consumer: str | None = None, from_start: bool = False
    ) -> TableSubscription:
        if self.database is None:
            raise EventsError("the in-process bus reads the outbox: it needs the database")
        return TableSubscription(self.database, from_start=from_start)

    def close(self) -> None:
        pass


class TableSubscription:
    """Reads the outbox table in id order from a cursor kept in memory.

    On SQLite (one writer at a time) ids commit in order, so the cursor misses nothing; on
    PostgreSQL a transaction may commit after a later id was read: use a real bus there.
    """

    def __init__(self, database: Database, *, from_start: bool) -> None:
        self.database = database
        with database.session() as s:
            self.cursor = 0 if from_start else last_seq(s)

    def fetch(self, timeout: float, limit: int = 100) -> list[Delivery]:
        deadline = time.monotonic() + timeout
        while True:
            with self.database.session() as s:
                events = read_after(s, self.cursor, limit)
            if events:
                self.cursor = events[-1].seq or self.cursor
                return [Delivery(e, str(e.seq)) for e in events]
            left = deadline - time.monotonic()
            if left <= 0:
                return []
            time.sleep(min(POLL_SECONDS, left))

    def ack(self, deliveries: Sequence[Delivery]) -> None:
        pass  # the cursor moved on when they were read

    def close(self) -> None:
        pass


register("memory", lambda url, database, namespace: InProcessBus(database))
