"""The outbox table: one row per domain event, written in the transaction of the change
that caused it, marked published once the relay has handed it to the bus."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from mediaplane.db import Base, utcnow

#: SQLite auto-numbers only an INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT identity.
_SEQ = BigInteger().with_variant(Integer(), "sqlite")
_WAITING = text("published_at IS NULL")


class OutboxRow(Base):
    __tablename__ = "outbox"
    __table_args__ = (
        # The relay's read (the oldest waiting events by id) touches only waiting rows,
        # however many published ones the outbox keeps.
        Index("ix_outbox_unpublished", "id", postgresql_where=_WAITING, sqlite_where=_WAITING),
    )

    #: Commit order per object (a change's row lock orders its writers), the relay's order.
    id: Mapped[int] = mapped_column(_SEQ, primary_key=True, autoincrement=True)
    #: The event's id (a UUID): unique, what consumers deduplicate on.
    event_id: Mapped[str] = mapped_column(String(36), unique=True)
    type: Mapped[str] = mapped_column(String(64))
    object_type: Mapped[str] = mapped_column(String(32))
    object_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    #: Set by the relay once the bus took the event; None: waiting in the outbox.
    published_at: Mapped[datetime | None] = mapped_column(index=True)
