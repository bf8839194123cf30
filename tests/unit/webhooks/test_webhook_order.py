"""Webhook deliveries ordered per object, on SQLite and PostgreSQL: an object's next event
waits while an earlier one is pending, in flight or waiting for a retry, other objects'
events go meanwhile, one that failed for good lets the next go, replays queue after the
object's deliveries so far, the due query finds earlier ones by its index, and the
migration fills in object and sequence for deliveries made before it."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import create_engine, select, text, update

from mediaplane.db import migrate, utcnow
from mediaplane.db._engine import _normalise, alembic_config
from mediaplane.events import Event, EventType, InProcessBus, Relay, emit
from mediaplane.runtime import Runtime
from mediaplane.webhooks import (
    DeliveryStatus,
    Dispatcher,
    RetryPolicy,
    SendLimits,
    WebhookDelivery,
    create_endpoint,
    fan_out,
    replay_delivery,
    replay_range,
)
from mediaplane.webhooks._service import due, due_query
from tests.support import migrated_runtime, postgres_database
from tests.webhook_receiver import Answer, Received, Receiver

LOOPBACK = ("127.0.0.1/32",)


@pytest.fixture(params=["sqlite", "postgres"])
def any_rt(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Runtime]:
    with migrated_runtime(request.param, tmp_path, webhook_allow="127.0.0.1/32") as runtime:
        yield runtime


def _endpoint(rt: Runtime, url: str) -> str:
    with rt.db.session() as s:
        return create_endpoint(s, url, ["*"], LOOPBACK).id


def _publish(rt: Runtime, *events: tuple[EventType, str]) -> list[Event]:
    """Emit the events (about assets ``obj``) and relay them: fanned out into deliveries."""
    with rt.db.session() as s:
        sent = [emit(s, kind, "asset", obj, {"id": obj}) for kind, obj in events]
    relay = Relay(rt.db, InProcessBus(rt.db), on_published=fan_out)
    relay.drain()
    relay.release()
    return sent


def _originals(rt: Runtime) -> dict[str, WebhookDelivery]:
    """Event id → its original delivery."""
    with rt.db.session() as s:
        rows = list(s.scalars(select(WebhookDelivery).where(WebhookDelivery.replay_of.is_(None))))
        s.expunge_all()
    return {d.event_id: d for d in rows}


def test_an_objects_next_event_waits_until_the_first_is_delivered(any_rt: Runtime) -> None:
    rt = any_rt
    receiver = Receiver()
    _endpoint(rt, receiver.url)
    a1, a2, b1, c1, c2 = _publish(
        rt,
        (EventType.ASSET_CREATED, "a"),
        (EventType.ASSET_READY, "a"),
        (EventType.ASSET_CREATED, "b"),
        (EventType.ASSET_CREATED, "c"),
        (EventType.ASSET_READY, "c"),
    )
    tries: dict[str, int] = {}
    gate = threading.Event()

    def answer(got: Received) -> Answer:
        # No attempt finishes while its tick is still claiming: else a fast answer frees a
        # slot mid-tick and the counts below depend on the machine's speed.
        gate.wait(10)
        event_id = got.event["id"]
        tries[event_id] = tries.get(event_id, 0) + 1
        if event_id == a1.id and tries[event_id] == 1:
            return 500, {}, b"down"  # a's first event: a 500, then 200 on the retry
        if event_id == c1.id:
            return 400, {}, b"no"  # c's first event fails for good
        return 200, {}, b"ok"

    receiver.answer = answer
    now = [utcnow()]
    dispatcher = Dispatcher(
        rt.db,
        SendLimits(LOOPBACK, 1.0, 5.0),
        RetryPolicy(base=10, window=3600, rng=random.Random(3)),
        concurrency=8,
        per_endpoint=2,
        clock=lambda: now[0],
    )

    def tick() -> int:
        gate.clear()
        try:
            return dispatcher.tick()
        finally:
            gate.set()

    def step() -> int:
        """One tick, and its attempts finished: how many it started."""
        started = tick()
        dispatcher.wait(10)
        return started

    def seen() -> list[str]:
        return [g.event["id"] for g in receiver.received]

    try:
        assert step() == 2  # a1 and b1, the endpoint's two slots; a2 and c2 wait
        assert sorted(seen()) == sorted([a1.id, b1.id])
        assert step() == 1  # c1 (a1 waits for its retry, a2 behind it)
        assert step() == 1  # c1 failed for good: c2 goes
        assert step() == 0  # a2 is still held back by a1's retry
        assert seen()[2:] == [c1.id, c2.id]
        rows = _originals(rt)
        assert rows[a1.id].status is DeliveryStatus.PENDING and rows[a1.id].attempts == 1
        assert rows[a2.id].attempts == 0
        assert rows[c1.id].status is DeliveryStatus.FAILED
        assert rows[b1.id].status is rows[c2.id].status is DeliveryStatus.DELIVERED

        now[0] += timedelta(minutes=5)  # a1's retry is due
        assert tick() == 1  # a1 alone: a2 waits while a1 is in flight
        dispatcher.wait(10)
        assert step() == 1  # a1 delivered: now a2
        assert step() == 0
    finally:
        dispatcher.close()
        receiver.close()
    assert seen()[4:] == [a1.id, a2.id]
    rows = _originals(rt)
    assert {rows[e.id].status for e in (a1, a2, b1, c2)} == {DeliveryStatus.DELIVERED}
    assert [(rows[e.id].object_id, rows[e.id].seq) for e in (a1, a2)] == [
        ("a", a1.seq),
        ("a", a2.seq),
    ]


def _finish(rt: Runtime, delivery_ids: list[str]) -> None:
    with rt.db.session() as s:
        s.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id.in_(delivery_ids))
            .values(status=DeliveryStatus.DELIVERED)
        )


def _due(rt: Runtime) -> set[str]:
    with rt.db.session() as s:
        return set(due(s, utcnow() + timedelta(seconds=1), 50))


def test_replays_queue_after_the_objects_deliveries_so_far(any_rt: Runtime) -> None:
    rt = any_rt
    ep = _endpoint(rt, "http://127.0.0.1:9/hook")
    e1, e2, other = _publish(
        rt,
        (EventType.ASSET_CREATED, "a"),
        (EventType.ASSET_READY, "a"),
        (EventType.ASSET_CREATED, "b"),
    )
    rows = _originals(rt)
    d1, d2, d3 = (rows[e.id].id for e in (e1, e2, other))
    assert _due(rt) == {d1, d3}  # d2 waits for d1
    _finish(rt, [d1, d3])
    with rt.db.session() as s:
        again = replay_delivery(s, ep, d1).id  # e1 once more, while e2 is unfinished
    assert _due(rt) == {d2}  # the replay goes after e2, the object's last so far
    _finish(rt, [d2])
    with rt.db.session() as s:
        span = replay_range(s, ep, utcnow() - timedelta(minutes=1), utcnow())
        copy = {d.event_id: d.id for d in span}
    assert len(span) == 3  # the originals only
    rounds = []
    while heads := _due(rt):
        rounds.append(heads)
        _finish(rt, list(heads))
    assert rounds == [{again, copy[other.id]}, {copy[e1.id]}, {copy[e2.id]}]
    if rt.db.engine.dialect.name != "sqlite":
        return  # PostgreSQL's planner picks by the table's size (it takes the index on a big one)
    with rt.db.session() as s:  # earlier deliveries are found by the order index
        q = due_query(utcnow(), 10).compile(s.get_bind(), compile_kwargs={"literal_binds": True})
        plan = [str(row[-1]) for row in s.execute(text(f"EXPLAIN QUERY PLAN {q}"))]
    assert any("USING INDEX ix_webhook_deliveries_order" in step for step in plan), plan


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_the_migration_fills_in_object_and_seq(database: str, tmp_path: Path) -> None:
    url, drop = f"sqlite:///{tmp_path / 'm.sqlite'}", None
    if database == "postgres":
        url, drop = postgres_database()
    command.upgrade(alembic_config(url), "0016_webhooks")
    engine = create_engine(_normalise(url))
    at = {"t": datetime(2026, 12, 1, 12, tzinfo=UTC)}
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO outbox (id, event_id, type, object_type, object_id, created_at,"
                    " data) VALUES (7, 'ev-kept', 'video.asset.ready', 'asset', 'a9', :t, '{}')"
                ),
                at,
            )
            conn.execute(
                text(
                    "INSERT INTO webhook_endpoints (id, url, events, enabled, secret,"
                    " created_at) VALUES ('ep', 'http://x/', '[]', true, 's', :t)"
                ),
                at,
            )
            for did, ev in (("d-kept", "ev-kept"), ("d-pruned", "ev-pruned")):
                conn.execute(
                    text(
                        "INSERT INTO webhook_deliveries (id, endpoint_id, event_id, event_type,"
                        " body, status, attempts, created_at) VALUES"
                        " (:id, 'ep', :ev, 'video.asset.ready', '{}', 'pending', 0, :t)"
                    ),
                    {**at, "id": did, "ev": ev},
                )
        migrate(url)
        with engine.connect() as conn:
            got = {
                r[0]: (r[1], r[2])
                for r in conn.execute(text("SELECT id, object_id, seq FROM webhook_deliveries"))
            }
    finally:
        engine.dispose()
        if drop is not None:
            drop()
    # the event still in the outbox gives both; a pruned one's delivery waits for nothing
    assert got == {"d-kept": ("a9", 7), "d-pruned": ("d-pruned", 0)}
