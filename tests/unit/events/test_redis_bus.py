"""The Redis Streams bus against the real Redis on 127.0.0.1:6379: consumer groups share
the work, an unacknowledged event comes back to its consumer after a restart, a tail sees
what is new, and ``consume`` reads what the relay published from the outbox."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis

from mediaplane.events import Event, EventType, Relay, consume, emit, open_bus
from mediaplane.events._redis import RedisStreamsBus
from tests.support import migrated_runtime, port_open, skip_or_fail

URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
def namespace() -> Iterator[str]:
    if not port_open("127.0.0.1", 6379):
        skip_or_fail("Redis is not listening on 127.0.0.1:6379")
    ns = f"mp_test_{uuid.uuid4().hex[:10]}"
    yield ns
    client = redis.Redis.from_url(URL)
    client.delete(f"{ns}:events")
    client.close()


@pytest.fixture
def bus(namespace: str) -> Iterator[RedisStreamsBus]:
    b = open_bus(URL, None, namespace)
    assert isinstance(b, RedisStreamsBus)
    yield b
    b.close()


def _event(i: int) -> Event:
    return Event(
        str(EventType.ASSET_UPDATED), str(uuid.uuid4()), datetime.now(UTC), "asset", "a", {"n": i}
    )


def test_a_group_shares_the_work(bus: RedisStreamsBus) -> None:
    a = bus.subscribe("hooks", consumer="a")
    b = bus.subscribe("hooks", consumer="b")
    sent = [_event(i) for i in range(200)]
    bus.publish(sent)
    got_a = a.fetch(1.0, limit=60)
    got_b = b.fetch(1.0, limit=60)
    rest = a.fetch(1.0, limit=200)
    ids_a = [d.event.id for d in got_a + rest]
    ids_b = [d.event.id for d in got_b]
    assert len(got_a) == len(got_b) == 60
    assert not set(ids_a) & set(ids_b)  # each event to one member
    assert sorted(ids_a + ids_b) == sorted(e.id for e in sent)
    assert ids_a[:60] == [e.id for e in sent[:60]]  # in the order published
    a.ack(got_a + rest)
    b.ack(got_b)
    late = bus.subscribe("hooks", consumer="c")
    assert late.fetch(0.1) == []  # acknowledged: never delivered again
    other = bus.subscribe("audit", consumer="x", from_start=True)  # another group: all
    assert len(other.fetch(1.0, limit=500)) == 200


def test_unacknowledged_events_return_after_a_restart(bus: RedisStreamsBus) -> None:
    first = bus.subscribe("g", consumer="worker-1")
    sent = [_event(i) for i in range(10)]
    bus.publish(sent)
    taken = first.fetch(1.0)
    first.ack(taken[:4])  # dies after handling four
    again = bus.subscribe("g", consumer="worker-1")  # the same member, restarted
    assert [d.event.id for d in again.fetch(1.0)] == [e.id for e in sent[4:]]


def test_a_tail_sees_new_events_only(bus: RedisStreamsBus) -> None:
    bus.publish([_event(0)])
    tail = bus.subscribe(None)
    assert tail.fetch(0.05) == []
    later = [_event(1), _event(2)]
    bus.publish(later)
    assert [d.event.id for d in tail.fetch(1.0)] == [e.id for e in later]


def test_consume_what_the_relay_published(namespace: str, tmp_path: Path) -> None:
    with migrated_runtime("sqlite", tmp_path, events_url=URL, queue_namespace=namespace) as rt:
        with rt.db.session() as s:
            ids = [
                emit(s, kind, "asset", "a1", {"id": "a1"}).id
                for kind in (
                    EventType.ASSET_CREATED,
                    EventType.ASSET_UPDATED,
                    EventType.ASSET_READY,
                )
            ]
            emit(s, EventType.UPLOAD_CREATED, "upload", "u1", {"id": "u1"})
        assert Relay(rt.db, rt.bus).drain() == 4
        events = consume(URL, "test", types=["video.asset.*"], namespace=namespace, from_start=True)
        got = list(itertools.islice(events, 3))
        events.close()
        rt.bus.close()
    assert [e.id for e in got] == ids
    assert [e.type for e in got] == [
        "video.asset.created",
        "video.asset.updated",
        "video.asset.ready",
    ]
    assert got[0].data == {"id": "a1"} and got[0].object_id == "a1"
