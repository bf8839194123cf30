"""Writing events into the outbox, in the caller's transaction, and reading its backlog."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select, update

from mediaplane.db import utcnow

from ._event import Event, EventType
from ._model import OutboxRow

if TYPE_CHECKING:
    from sqlalchemy.orm import Session


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
    row = OutboxRow(
        event_id=new_event_id(),
        type=str(type),
        object_type=object_type,
        object_id=object_id,
        created_at=utcnow(),
        data=data,
    )
    session.add(row)
    session.flush()
    return Event.of(row)


def unpublished(session: Session, limit: int) -> list[Event]:
    """The oldest ``limit`` events the bus has not taken yet, in outbox order."""
    rows = session.scalars(
        select(OutboxRow)
        .where(OutboxRow.published_at.is_(None))
        .order_by(OutboxRow.id)
        .limit(limit)
    ).all()
    return [Event.of(r) for r in rows]


def mark_published(session: Session, seqs: list[int]) -> None:
    session.execute(
        update(OutboxRow)
        .where(OutboxRow.id.in_(seqs), OutboxRow.published_at.is_(None))
        .values(published_at=utcnow())
        .execution_options(synchronize_session=False)
    )


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
    rows = session.scalars(
        select(OutboxRow).where(OutboxRow.id > seq).order_by(OutboxRow.id).limit(limit)
    ).all()
    return [Event.of(r) for r in rows]


def last_seq(session: Session) -> int:
    return int(session.scalar(select(func.max(OutboxRow.id))) or 0)
