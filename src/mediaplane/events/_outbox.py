"""Writing events into the outbox, in the caller's transaction, and reading its backlog."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Text, delete, func, select, update
from sqlalchemy import cast as sql_cast

from mediaplane.db import utcnow

from ._event import Event, EventType
from ._model import OutboxRow

if TYPE_CHECKING:
    from sqlalchemy import Table
    from sqlalchemy.orm import Session


_TABLE = cast("Table", OutboxRow.__table__)
_INSERT = _TABLE.insert().returning(_TABLE.c.id)


def new_event_id() -> str:
    return str(uuid.uuid4())


def emit(
    session: Session, type: EventType, object_type: str, object_id: str, data: dict[str, Any]
) -> Event:
    """Add an event to the outbox in ``session``'s transaction: it exists if and only if
    the change it reports commits.

    The change is flushed first, so its row locks are held before the event gets its
    outbox id: two transactions changing one object get ids in their commit order.

    :param data: the resource as the API returns it, after the change (JSON-serializable).
    """
    session.flush()
    event = Event(str(type), new_event_id(), utcnow(), object_type, object_id, data)
    # One compiled Core INSERT: building a statement (or a unit of work) per event would
    # cost more than writing the row.
    params = {
        "event_id": event.id,
        "type": event.type,
        "object_type": object_type,
        "object_id": object_id,
        "created_at": event.created_at,
        "data": data,
    }
    seq = session.connection().execute(_INSERT, params).scalar_one()
    return event.with_seq(seq)


#: An outbox row as the relay reads it: ``data`` as the JSON text stored, not decoded (it
#: goes to the bus as it is; decoding and encoding it again cost more than the query).
_ROW = select(
    _TABLE.c.id,
    _TABLE.c.event_id,
    _TABLE.c.type,
    _TABLE.c.object_type,
    _TABLE.c.object_id,
    _TABLE.c.created_at,
    sql_cast(_TABLE.c.data, Text).label("data"),
)


def _events(rows: Any) -> list[Event]:
    return [
        Event.stored(r.type, r.event_id, r.created_at, r.object_type, r.object_id, r.data, r.id)
        for r in rows
    ]


def unpublished(session: Session, limit: int) -> list[Event]:
    """The oldest ``limit`` events the bus has not taken yet, in outbox order."""
    t = _TABLE
    return _events(
        session.execute(_ROW.where(t.c.published_at.is_(None)).order_by(t.c.id).limit(limit))
    )


def mark_published(session: Session, seqs: list[int]) -> set[int]:
    """Mark the events published; the ids of those that were not yet (a stalled relay
    beside this one may have marked some)."""
    result = session.execute(
        update(OutboxRow)
        .where(OutboxRow.id.in_(seqs), OutboxRow.published_at.is_(None))
        .values(published_at=utcnow())
        .returning(OutboxRow.id)
        .execution_options(synchronize_session=False)
    )
    return set(result.scalars())


def backlog(session: Session) -> int:
    """How many events wait in the outbox for the bus."""
    return int(
        session.scalar(
            select(func.count()).select_from(OutboxRow).where(OutboxRow.published_at.is_(None))
        )
        or 0
    )


def read_after(session: Session, seq: int, limit: int) -> list[Event]:
    """Events with an outbox id above ``seq``, in order (published or not)."""
    t = _TABLE
    return _events(session.execute(_ROW.where(t.c.id > seq).order_by(t.c.id).limit(limit)))


def last_seq(session: Session) -> int:
    return int(session.scalar(select(func.max(OutboxRow.id))) or 0)


def prune(session: Session, older_than_seconds: float, limit: int = 5000) -> int:
    """Delete up to ``limit`` events the bus took more than ``older_than_seconds`` ago;
    how many. Unpublished events are never deleted."""
    cutoff = utcnow() - timedelta(seconds=older_than_seconds)
    t = _TABLE
    old = (
        select(t.c.id)
        .where(t.c.published_at.is_not(None), t.c.published_at < cutoff)
        .order_by(t.c.id)
        .limit(limit)
    )
    ids = list(session.scalars(old))
    if ids:
        session.execute(delete(t).where(t.c.id.in_(ids)))
    return len(ids)
