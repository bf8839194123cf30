"""Endpoints (create, change, rotate the secret, delete), the fan-out of published events
into deliveries, the delivery log and its replays. Every function takes the caller's
session and changes nothing outside it."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, exists, func, select, update
from sqlalchemy.orm import aliased

from mediaplane.db import utcnow
from mediaplane.events import matches
from mediaplane.intake import UrlRefused, check_url

from ._errors import InvalidWebhook, WebhookNotFound
from ._model import DeliveryStatus, WebhookDelivery, WebhookEndpoint, new_secret

if TYPE_CHECKING:
    from sqlalchemy import ColumnElement, Select
    from sqlalchemy.orm import Session

    from mediaplane.events import Event

#: A rotated-out secret keeps signing (a second ``v1=``) this long.
ROTATION_OVERLAP = timedelta(hours=24)
#: An event type pattern: dotted words, ``*``, ``?`` and ``[…]`` (fnmatch).
_PATTERN = re.compile(r"^[A-Za-z0-9_.*?\[\]!-]{1,64}$")
MAX_PATTERNS = 50
#: Deliveries one replay of a time range may create.
MAX_REPLAY = 1000


def check_patterns(events: Sequence[str]) -> list[str]:
    """The event type patterns as stored; raises :class:`InvalidWebhook` for a bad one."""
    if not events:
        raise InvalidWebhook("Name at least one event type, e.g. video.asset.*", "invalid_events")
    if len(events) > MAX_PATTERNS:
        raise InvalidWebhook(f"At most {MAX_PATTERNS} event patterns.", "invalid_events")
    for p in events:
        if not _PATTERN.match(p):
            raise InvalidWebhook(f"Not an event type pattern: {p!r}", "invalid_events")
    return list(dict.fromkeys(events))


def check_endpoint_url(url: str, allow: Iterable[str]) -> str:
    """The URL if webhooks may be sent there (checked like URL imports: public addresses
    only, unless the operator allows a network); raises :class:`InvalidWebhook`."""
    if len(url) > 2048:
        raise InvalidWebhook("The URL is too long.", "url_refused")
    try:
        check_url(url, allow)
    except UrlRefused as exc:
        raise InvalidWebhook(str(exc), "url_refused") from None
    return url


def create_endpoint(
    s: Session, url: str, events: Sequence[str], allow: Iterable[str]
) -> WebhookEndpoint:
    endpoint = WebhookEndpoint(
        url=check_endpoint_url(url, allow), events=check_patterns(events), secret=new_secret()
    )
    s.add(endpoint)
    s.flush()
    return endpoint


def get_endpoint(s: Session, endpoint_id: str) -> WebhookEndpoint:
    endpoint = s.get(WebhookEndpoint, endpoint_id)
    if endpoint is None:
        raise WebhookNotFound("No such webhook endpoint.")
    return endpoint


def list_endpoints(s: Session) -> list[WebhookEndpoint]:
    return list(s.scalars(select(WebhookEndpoint).order_by(WebhookEndpoint.created_at)))


@dataclass(frozen=True)
class EndpointChanges:
    """What a PATCH changes (None: unchanged)."""

    url: str | None = None
    events: Sequence[str] | None = None
    enabled: bool | None = None


def update_endpoint(
    s: Session, endpoint_id: str, changes: EndpointChanges, allow: Iterable[str]
) -> WebhookEndpoint:
    endpoint = get_endpoint(s, endpoint_id)
    if changes.url is not None:
        endpoint.url = check_endpoint_url(changes.url, allow)
    if changes.events is not None:
        endpoint.events = check_patterns(changes.events)
    if changes.enabled is not None:
        endpoint.enabled = changes.enabled
        endpoint.disabled_reason = None if changes.enabled else "disabled"
    s.flush()
    return endpoint


def delete_endpoint(s: Session, endpoint_id: str) -> None:
    get_endpoint(s, endpoint_id)
    s.execute(delete(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint_id))
    s.execute(delete(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id))


def rotate_secret(s: Session, endpoint_id: str, now: datetime | None = None) -> WebhookEndpoint:
    """A new secret; the old one keeps signing beside it for :data:`ROTATION_OVERLAP`."""
    endpoint = get_endpoint(s, endpoint_id)
    endpoint.previous_secret = endpoint.secret
    endpoint.previous_until = (now or utcnow()) + ROTATION_OVERLAP
    endpoint.secret = new_secret()
    s.flush()
    return endpoint


def signing_secrets(endpoint: WebhookEndpoint, now: datetime) -> list[str]:
    """The secrets a delivery is signed with now: the current one, then the previous one
    while its overlap lasts."""
    out = [endpoint.secret]
    if endpoint.previous_secret and endpoint.previous_until and now < endpoint.previous_until:
        out.append(endpoint.previous_secret)
    return out


def _seq(event: Event) -> int:
    if event.seq is None:
        raise ValueError("fan_out takes events read from the outbox (with their seq)")
    return event.seq


def fan_out(s: Session, events: Sequence[Event]) -> int:
    """A delivery row for each (enabled endpoint, event it subscribes to); how many.

    Called by the relay in the transaction that marks ``events`` published, so each event
    is fanned out exactly once even when a relay dies after publishing. Each delivery
    carries its event's object id and outbox sequence (its place in the object's queue)."""
    endpoints = list(s.scalars(select(WebhookEndpoint).where(WebhookEndpoint.enabled.is_(True))))
    if not endpoints or not events:
        return 0
    now = utcnow()
    rows = [
        WebhookDelivery(
            endpoint_id=ep.id,
            event_id=e.id,
            fanout_key=e.id,
            event_type=e.type,
            object_id=e.object_id,
            seq=_seq(e),
            body=e.dumps(),
            created_at=now,
            next_attempt_at=now,
        )
        for e in events
        for ep in endpoints
        if matches(e.type, ep.events)
    ]
    s.add_all(rows)
    s.flush()
    return len(rows)


def prune_deliveries(s: Session, older_than_seconds: float, limit: int = 5000) -> int:
    """Delete up to ``limit`` delivered or failed deliveries created more than
    ``older_than_seconds`` ago; how many. Pending ones are never deleted."""
    cutoff = utcnow() - timedelta(seconds=older_than_seconds)
    old = (
        select(WebhookDelivery.id)
        .where(
            WebhookDelivery.status != DeliveryStatus.PENDING,
            WebhookDelivery.created_at < cutoff,
        )
        .limit(limit)
    )
    ids = list(s.scalars(old))
    if ids:
        s.execute(delete(WebhookDelivery).where(WebhookDelivery.id.in_(ids)))
    return len(ids)


def list_deliveries(
    s: Session, endpoint_id: str, *, limit: int = 50, before: datetime | None = None
) -> list[WebhookDelivery]:
    """An endpoint's delivery log, newest first."""
    get_endpoint(s, endpoint_id)
    q = select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint_id)
    if before is not None:
        q = q.where(WebhookDelivery.created_at < before)
    q = q.order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id).limit(limit)
    return list(s.scalars(q))


def _queue_ends(s: Session, endpoint_id: str, object_ids: Iterable[str]) -> dict[str, int]:
    """The highest ``seq`` of each object's deliveries to the endpoint."""
    ids = list(set(object_ids))
    q = (
        select(WebhookDelivery.object_id, func.max(WebhookDelivery.seq))
        .where(WebhookDelivery.endpoint_id == endpoint_id, WebhookDelivery.object_id.in_(ids))
        .group_by(WebhookDelivery.object_id)
    )
    return {object_id: int(seq) for object_id, seq in s.execute(q)}


def _replays(s: Session, originals: Sequence[WebhookDelivery]) -> list[WebhookDelivery]:
    """New deliveries of the originals' bodies (the same event ids), in that order.

    Each joins the end of its object's queue for the endpoint: it goes after every
    delivery of the object made so far (the highest ``seq``, a later ``created_at``; the
    copies one call makes are a microsecond apart, so they keep their order) and before
    the object's later events."""
    if not originals:
        return []
    ends = _queue_ends(s, originals[0].endpoint_id, (d.object_id for d in originals))
    now = utcnow()
    copies = [
        WebhookDelivery(
            endpoint_id=d.endpoint_id,
            event_id=d.event_id,
            event_type=d.event_type,
            object_id=d.object_id,
            seq=max(d.seq, ends.get(d.object_id, d.seq)),
            body=d.body,
            replay_of=d.id,
            created_at=now + timedelta(microseconds=i),
            next_attempt_at=now,
        )
        for i, d in enumerate(originals)
    ]
    s.add_all(copies)
    s.flush()
    return copies


def replay_delivery(s: Session, endpoint_id: str, delivery_id: str) -> WebhookDelivery:
    """Send one delivery's body again (the same event id) as a new delivery, after every
    delivery of its object so far."""
    original = s.get(WebhookDelivery, delivery_id)
    if original is None or original.endpoint_id != endpoint_id:
        raise WebhookNotFound("No such delivery for this endpoint.")
    (copy,) = _replays(s, [original])
    return copy


def replay_range(
    s: Session, endpoint_id: str, since: datetime, until: datetime
) -> list[WebhookDelivery]:
    """Replay every original delivery created in [since, until), oldest first (each object's
    replays in its events' order, after its deliveries so far)."""
    get_endpoint(s, endpoint_id)
    if until <= since:
        raise InvalidWebhook("until must be after since.", "invalid_range")
    q = (
        select(WebhookDelivery)
        .where(
            WebhookDelivery.endpoint_id == endpoint_id,
            WebhookDelivery.replay_of.is_(None),
            WebhookDelivery.created_at >= since,
            WebhookDelivery.created_at < until,
        )
        .order_by(WebhookDelivery.created_at, WebhookDelivery.seq, WebhookDelivery.id)
        .limit(MAX_REPLAY + 1)
    )
    originals = list(s.scalars(q))
    if len(originals) > MAX_REPLAY:
        raise InvalidWebhook(
            f"More than {MAX_REPLAY} deliveries in that range; replay a shorter one.",
            "range_too_large",
        )
    return _replays(s, originals)


def endpoint_json(endpoint: WebhookEndpoint, *, with_secret: bool = False) -> dict[str, Any]:
    """The API shape of an endpoint (the secret only when it was just made)."""
    out: dict[str, Any] = {
        "id": endpoint.id,
        "url": endpoint.url,
        "events": list(endpoint.events),
        "enabled": endpoint.enabled,
        "disabled_reason": endpoint.disabled_reason,
        "created_at": endpoint.created_at.isoformat(),
        "previous_secret_expires_at": (
            endpoint.previous_until.isoformat() if endpoint.previous_until else None
        ),
    }
    if with_secret:
        out["secret"] = endpoint.secret
    return out


# -- the sender's side: claims and outcomes -------------------------------------------


def _earlier_unfinished() -> ColumnElement[bool]:
    """Whether an earlier delivery of the same object to the same endpoint is still
    pending (due, waiting for a retry, or being sent): then this one waits.

    Earlier is by (``seq``, ``created_at``, ``id``), a total order, so the first unfinished
    delivery of an object never waits; ``delivered`` and ``failed`` ones let the next go.
    ``ix_webhook_deliveries_order`` finds the candidates (equal endpoint, object and
    status, ``seq`` up to this one's)."""
    d, earlier = WebhookDelivery, aliased(WebhookDelivery)
    return exists().where(
        earlier.endpoint_id == d.endpoint_id,
        earlier.object_id == d.object_id,
        earlier.status == DeliveryStatus.PENDING,
        earlier.seq <= d.seq,
        (earlier.seq < d.seq)
        | (earlier.created_at < d.created_at)
        | ((earlier.created_at == d.created_at) & (earlier.id < d.id)),
    )


def due_query(now: datetime, limit: int, skip: Iterable[str] = ()) -> Select[str]:
    """The statement :func:`due` runs."""
    q = (
        select(WebhookDelivery.id)
        .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
        .where(
            WebhookDelivery.status == DeliveryStatus.PENDING,
            WebhookDelivery.next_attempt_at <= now,
            (WebhookDelivery.claimed_until.is_(None)) | (WebhookDelivery.claimed_until < now),
            WebhookEndpoint.enabled.is_(True),
            ~_earlier_unfinished(),
        )
        .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.seq, WebhookDelivery.id)
        .limit(limit)
    )
    skip = list(skip)
    if skip:
        q = q.where(WebhookDelivery.endpoint_id.not_in(skip))
    return q


def due(s: Session, now: datetime, limit: int, skip: Iterable[str] = ()) -> list[str]:
    """Ids of pending deliveries whose time has come and that nobody holds, oldest first
    (by due time, then event), to enabled endpoints not in ``skip`` (endpoints already at
    their concurrency), each the first unfinished one of its object for its endpoint (so
    at most one delivery per endpoint and object is ever in flight, and they arrive in the
    object's order)."""
    return list(s.scalars(due_query(now, limit, skip)))


def claim(s: Session, delivery_id: str, now: datetime, hold: timedelta) -> bool:
    """Take the delivery for one attempt until ``now + hold``; False if another sender
    holds it (or it is no longer pending). One conditional UPDATE: atomic."""
    result = s.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.id == delivery_id,
            WebhookDelivery.status == DeliveryStatus.PENDING,
            (WebhookDelivery.claimed_until.is_(None)) | (WebhookDelivery.claimed_until < now),
        )
        .values(claimed_until=now + hold)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0) == 1)
