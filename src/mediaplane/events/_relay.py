"""The relay: publishes the outbox's events to the bus in order and marks them published,
in one process of the deployment at a time (the holder of a lease row).

At-least-once: an event is marked only after the bus took it, so a relay that dies
between the two publishes it again (the same event id) after the restart. A relay that
stalls past its lease (15 s) while another takes over may publish a batch beside it until
its next lease check: duplicates, with the same ids.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import structlog
from sqlalchemy.exc import SQLAlchemyError

from mediaplane.jobs import Lease

from ._outbox import mark_published, unpublished

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from sqlalchemy.orm import Session

    from mediaplane.db import Database

    from ._bus import Bus
    from ._event import Event

    #: Called with the session that marks a batch published and the batch, in order.
    OnPublished = Callable[[Session, Sequence[Event]], object]

log = structlog.get_logger("mediaplane.events")


class Relay:
    """Moves events from the outbox to ``bus``; call :meth:`tick` in a loop.

    :param batch: events per read, publish and mark.
    :param lease_seconds: a dead holder's lease is taken over after this long.
    :param on_published: runs in the transaction that marks a batch published, with the
        events this relay marked (the webhooks' fan-out): once per event, with the mark,
        or not at all.
    """

    LEASE = "mediaplane.events.relay"

    def __init__(
        self,
        db: Database,
        bus: Bus,
        *,
        batch: int = 500,
        lease_seconds: float = 15.0,
        on_published: OnPublished | None = None,
    ) -> None:
        self.db = db
        self.on_published = on_published
        self.bus = bus
        self.batch = batch
        self.lease = Lease(db, self.LEASE, seconds=lease_seconds)
        self._held = False
        self._next_check = 0.0

    def holds_lease(self) -> bool:
        """Whether this process is the relay now. The lease is renewed (or, by a standby,
        tried) a third of its time apart, not on every tick: a database write each."""
        now = time.monotonic()
        if now >= self._next_check:
            self._held = self.lease.acquire()
            self._next_check = now + self.lease.seconds / 3
        return self._held

    def tick(self) -> int:
        """Publish the next batch if this process holds the lease; how many it published.

        :raises BusUnavailable: the bus did not take them (they wait in the outbox).
        """
        if not self.holds_lease():
            return 0
        with self.db.session() as s:
            events = unpublished(s, self.batch)
        if not events:
            return 0
        self.bus.publish(events)
        with self.db.session() as s:
            marked = mark_published(s, [e.seq for e in events if e.seq is not None])
            if marked and self.on_published is not None:
                self.on_published(s, [e for e in events if e.seq in marked])
        return len(events)

    def drain(self) -> int:
        """Publish until the outbox is empty (or another process holds the lease)."""
        total = 0
        while n := self.tick():
            total += n
        return total

    def release(self) -> None:
        """Hand the lease on now; if the database is gone, it expires by itself."""
        self._held, self._next_check = False, 0.0
        try:
            self.lease.release()
        except SQLAlchemyError:
            log.warning("events.relay_release_failed", exc_info=True)
