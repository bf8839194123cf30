"""Tables: webhook endpoints (URL, event patterns, secrets) and their deliveries."""

from __future__ import annotations

import enum
import secrets
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from mediaplane.db import Base, str_enum, utcnow

_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"


def new_id(length: int = 24) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def new_secret() -> str:
    """A signing secret: ``whsec_`` and 32 random bytes, URL-safe."""
    return "whsec_" + secrets.token_urlsafe(32)


class DeliveryStatus(enum.StrEnum):
    PENDING = "pending"  # waiting for its (next) attempt, or for its object's earlier ones
    DELIVERED = "delivered"  # the endpoint answered 2xx
    #: Gave up: a 4xx, a 410, a redirect, or the retry window ended. Like ``delivered``,
    #: it lets the object's next delivery go.
    FAILED = "failed"


class WebhookEndpoint(Base):
    __tablename__ = "webhook_endpoints"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    url: Mapped[str] = mapped_column(String(2048))
    #: fnmatch patterns of event types (``video.asset.*``).
    events: Mapped[list[str]] = mapped_column(JSON)
    enabled: Mapped[bool] = mapped_column(default=True)
    #: Why it was disabled by Mediaplane (``gone``: it answered 410), None otherwise.
    disabled_reason: Mapped[str | None] = mapped_column(String(64))
    #: Kept readable: every delivery is signed with it (the HMAC needs the secret itself).
    secret: Mapped[str] = mapped_column(String(128), default=new_secret)
    #: The secret before the last rotation, still signing until ``previous_until``.
    previous_secret: Mapped[str | None] = mapped_column(String(128))
    previous_until: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class WebhookDelivery(Base):
    """One event for one endpoint: its body, its attempts so far and the last outcome.

    The deliveries of one object to one endpoint form a queue, ordered by
    (``seq``, ``created_at``, ``id``): one is sent (or retried) only once every earlier one
    is delivered or failed (see ``_service.due``).
    """

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("endpoint_id", "fanout_key"),
        Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
        Index("ix_webhook_deliveries_endpoint_created", "endpoint_id", "created_at"),
        #: An object's unfinished deliveries to an endpoint, in order (the due query's
        #: "nothing earlier unfinished" clause).
        Index("ix_webhook_deliveries_order", "endpoint_id", "object_id", "status", "seq"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    endpoint_id: Mapped[str] = mapped_column(ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    event_id: Mapped[str] = mapped_column(String(36))
    event_type: Mapped[str] = mapped_column(String(64))
    #: The event's object (an asset's or upload's id): what the deliveries are ordered by.
    object_id: Mapped[str] = mapped_column(String(64))
    #: The place in that object's queue: the event's outbox sequence; a replay takes the
    #: highest of the object's deliveries to the endpoint when it was made (and its later
    #: ``created_at`` puts it after them).
    seq: Mapped[int] = mapped_column(BigInteger)
    #: The request body sent, byte for byte (the event's JSON).
    body: Mapped[str] = mapped_column(Text)
    #: The delivery this one replays (None for an original).
    replay_of: Mapped[str | None] = mapped_column(String(32))
    #: The event id on an original, None on a replay: one original per endpoint and event.
    fanout_key: Mapped[str | None] = mapped_column(String(36))
    status: Mapped[DeliveryStatus] = mapped_column(
        str_enum(DeliveryStatus), default=DeliveryStatus.PENDING
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(default=utcnow)
    #: A sender holds the delivery until then (several processes never send it at once).
    claimed_until: Mapped[datetime | None] = mapped_column()
    response_status: Mapped[int | None] = mapped_column(Integer)
    #: The start of the answer's body (at most a few KiB are read).
    response_body: Mapped[str | None] = mapped_column(Text)
    latency_ms: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_attempt_at: Mapped[datetime | None] = mapped_column()
    delivered_at: Mapped[datetime | None] = mapped_column()

    def json(self) -> dict[str, Any]:
        """The delivery log's API shape."""

        def iso(v: datetime | None) -> str | None:
            return v.isoformat() if v is not None else None

        return {
            "id": self.id,
            "endpoint_id": self.endpoint_id,
            "event_id": self.event_id,
            "event_type": self.event_type,
            "object_id": self.object_id,
            "replay_of": self.replay_of,
            "status": str(self.status),
            "attempts": self.attempts,
            "next_attempt_at": iso(self.next_attempt_at),
            "response_status": self.response_status,
            "response_body": self.response_body,
            "latency_ms": self.latency_ms,
            "error": self.error,
            "request_body": self.body,
            "created_at": iso(self.created_at),
            "last_attempt_at": iso(self.last_attempt_at),
            "delivered_at": iso(self.delivered_at),
        }
