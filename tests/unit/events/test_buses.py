"""Every bus adapter against its real server: Redis Streams (127.0.0.1:6379), NATS
JetStream (127.0.0.1:4222), Kafka (the tansu broker, started for the module). The same
contract for each: a group shares the work, an unacknowledged event comes back to the
group after its consumer restarts, a tail sees what is new, and ``consume`` reads what
the relay published from the outbox."""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis

from mediaplane.events import (
    Bus,
    BusUnavailable,
    Delivery,
    Event,
    EventType,
    Relay,
    Subscription,
    consume,
    emit,
    open_bus,
)
from tests.support import free_port, migrated_runtime, port_open, skip_or_fail
from tests.tansu import running_tansu

REDIS = "redis://127.0.0.1:6379/0"
NATS = "nats://127.0.0.1:4222"
#: Long enough for any bus to hand over what it has (Kafka: a group's join and rebalance).
WAIT_S = 30.0


@pytest.fixture(scope="module")
def kafka_address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_tansu(tmp_path_factory.mktemp("tansu")) as address:
        yield address


@pytest.fixture(params=["redis", "nats", "kafka"])
def url(request: pytest.FixtureRequest) -> str:
    if request.param == "redis":
        if not port_open("127.0.0.1", 6379):
            skip_or_fail("Redis is not listening on 127.0.0.1:6379")
        return REDIS
    if request.param == "nats":
        if not port_open("127.0.0.1", 4222):
            skip_or_fail("NATS (with JetStream) is not listening on 127.0.0.1:4222")
        return NATS
    return f"kafka://{request.getfixturevalue('kafka_address')}?partitions=4"


@pytest.fixture
def namespace(url: str) -> Iterator[str]:
    ns = f"mp_test_{uuid.uuid4().hex[:10]}"
    yield ns
    _drop(url, ns)


def _drop(url: str, ns: str) -> None:
    """Delete the namespace's stream or topic from the server."""
    bus = open_bus(url, None, ns)
    try:
        if url.startswith("redis"):
            client = redis.Redis.from_url(url)
            client.delete(f"{ns}:events")
            client.close()
        elif url.startswith("nats"):
            from mediaplane.events._nats import NatsJetStreamBus

            assert isinstance(bus, NatsJetStreamBus)
            bus.run(bus.jetstream().delete_stream(bus.stream))
        else:
            from confluent_kafka.admin import AdminClient

            from mediaplane.events._kafka import KafkaBus

            assert isinstance(bus, KafkaBus)
            admin = AdminClient(bus.config())  # (held: its futures die with it)
            admin.delete_topics([bus.topic])[bus.topic].result(10)
    finally:
        bus.close()


@pytest.fixture
def bus(url: str, namespace: str) -> Iterator[Bus]:
    b = open_bus(url, None, namespace)
    yield b
    b.close()


def _event(i: int, obj: str = "a") -> Event:
    return Event(
        str(EventType.ASSET_UPDATED), str(uuid.uuid4()), datetime.now(UTC), "asset", obj, {"n": i}
    )


def _fetch(sub: Subscription, n: int, wait: float = WAIT_S) -> list[Delivery]:
    """Fetch until ``n`` events came (or ``wait`` seconds passed)."""
    got: list[Delivery] = []
    deadline = time.monotonic() + wait
    while len(got) < n and time.monotonic() < deadline:
        got += sub.fetch(0.3, limit=n - len(got))
    return got


def _ids(deliveries: Sequence[Delivery]) -> list[str]:
    return [d.event.id for d in deliveries]


def test_a_group_shares_the_work(bus: Bus) -> None:
    a = bus.subscribe("hooks", consumer="a")
    b = bus.subscribe("hooks", consumer="b")
    sent = [_event(i, f"o{i % 16}") for i in range(200)]
    bus.publish(sent)
    got: dict[str, list[Delivery]] = {"a": [], "b": []}
    done = threading.Event()

    def member(name: str, sub: Subscription) -> None:  # two processes, say
        deadline = time.monotonic() + WAIT_S
        while not done.is_set() and time.monotonic() < deadline:
            batch = sub.fetch(0.3, limit=20)
            if batch:
                time.sleep(0.02)  # handling them takes a while: the other member gets some
            sub.ack(batch)
            got[name] += batch
            if len({d.event.id for d in got["a"] + got["b"]}) == len(sent):
                done.set()

    threads = [threading.Thread(target=member, args=item) for item in (("a", a), ("b", b))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ids_a, ids_b = _ids(got["a"]), _ids(got["b"])
    assert ids_a and ids_b  # both members worked
    assert not set(ids_a) & set(ids_b)  # each event to one member
    assert sorted(ids_a + ids_b) == sorted(e.id for e in sent)
    for mine in got.values():  # each member sees each object's events in order
        for obj in {e.object_id for e in sent}:
            ns = [d.event.data["n"] for d in mine if d.event.object_id == obj]
            assert ns == sorted(ns)
    a.close()
    b.close()
    late = bus.subscribe("hooks", consumer="c")
    marker = _event(200)
    bus.publish([marker])
    # acknowledged: never delivered again. A member joining a group two others just left
    # waits for the group to settle (Kafka: about 9 s here, longer on a loaded machine)
    assert _ids(_fetch(late, 1, wait=2 * WAIT_S)) == [marker.id]
    late.close()
    other = bus.subscribe("audit", consumer="x", from_start=True)  # another group: all
    assert sorted(_ids(_fetch(other, 201))) == sorted(e.id for e in [*sent, marker])
    other.close()


def test_unacknowledged_events_return_after_a_restart(bus: Bus) -> None:
    first = bus.subscribe("g", consumer="worker-1")
    sent = [_event(i) for i in range(10)]
    bus.publish(sent)
    taken = _fetch(first, 10)
    assert _ids(taken) == [e.id for e in sent]
    first.ack(taken[:4])
    first.close()  # stops (its connection closes) after handling four
    again = bus.subscribe("g", consumer="worker-1")  # the same member, restarted
    assert _ids(_fetch(again, 6)) == [e.id for e in sent[4:]]
    again.close()


def test_a_tail_sees_new_events_only(bus: Bus) -> None:
    bus.publish([_event(0)])
    tail = bus.subscribe(None)
    assert tail.fetch(0.05) == []
    later = [_event(1), _event(2)]
    bus.publish(later)
    assert _ids(_fetch(tail, 2)) == [e.id for e in later]
    tail.close()


def test_consume_what_the_relay_published(url: str, namespace: str, tmp_path: Path) -> None:
    with migrated_runtime("sqlite", tmp_path, events_url=url, queue_namespace=namespace) as rt:
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
        events = consume(url, "test", types=["video.asset.*"], namespace=namespace, from_start=True)
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


def test_nats_that_is_down_is_unavailable_within_bounds() -> None:
    down = open_bus(f"nats://127.0.0.1:{free_port()}", None, "mp_test_down")
    started = time.monotonic()
    with pytest.raises(BusUnavailable):
        down.publish([_event(0)])
    with pytest.raises(BusUnavailable):
        down.subscribe("g")
    down.close()
    assert time.monotonic() - started < 20  # bounded: the relay tries again later
