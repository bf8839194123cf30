"""A consumer group's members failing, against the real servers (Redis Streams on 6379,
NATS JetStream on 4222), with the default ``ack_wait``: a member killed with SIGKILL while
it holds events loses them to another member after about ``ack_wait`` seconds (not a
minute), and a member whose handler takes longer than ``ack_wait`` keeps its events (its
subscription tells the bus it is still working on them)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis

from mediaplane.events import Bus, Delivery, Event, EventType, Subscription, open_bus
from mediaplane.events._bus import ACK_WAIT_SECONDS
from tests.support import port_open, skip_or_fail

REDIS = "redis://127.0.0.1:6379/0"
NATS = "nats://127.0.0.1:4222"
#: The killed member's events must reach the survivor well before the old 60 s ack_wait.
HANDOVER_WAIT_S = 3 * ACK_WAIT_SECONDS
CHILD_START_S = 30.0

#: A group member in its own process: fetches the events, says so, and hangs (killed).
MEMBER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from mediaplane.events import open_bus

    url, namespace, n, progress = sys.argv[1:]
    bus = open_bus(url, None, namespace)
    sub = bus.subscribe("workers", consumer="doomed")
    got = []
    while len(got) < int(n):
        got += sub.fetch(0.5, limit=int(n) - len(got))
    Path(progress).write_text(" ".join(d.event.id for d in got))
    time.sleep(120)  # handling them, never acknowledged: killed here
    """
)


@pytest.fixture(params=["redis", "nats"])
def url(request: pytest.FixtureRequest) -> str:
    if request.param == "redis":
        if not port_open("127.0.0.1", 6379):
            skip_or_fail("Redis is not listening on 127.0.0.1:6379")
        return REDIS
    if not port_open("127.0.0.1", 4222):
        skip_or_fail("NATS (with JetStream) is not listening on 127.0.0.1:4222")
    return NATS


@pytest.fixture
def namespace() -> str:
    return f"mp_test_{uuid.uuid4().hex[:10]}"


@pytest.fixture
def bus(url: str, namespace: str) -> Iterator[Bus]:
    ns = namespace
    b = open_bus(url, None, ns)
    yield b
    if url.startswith("redis"):
        client = redis.Redis.from_url(url)
        client.delete(f"{ns}:events")
        client.close()
    else:
        from mediaplane.events._nats import NatsJetStreamBus

        assert isinstance(b, NatsJetStreamBus)
        b.run(b.jetstream().delete_stream(b.stream))
    b.close()


def _events(n: int, tag: str) -> list[Event]:
    return [
        Event(
            str(EventType.ASSET_UPDATED),
            str(uuid.uuid4()),
            datetime.now(UTC),
            "asset",
            f"{tag}{i}",
            {"n": i},
        )
        for i in range(n)
    ]


def _fetch(sub: Subscription, n: int, wait: float) -> list[Delivery]:
    got: list[Delivery] = []
    deadline = time.monotonic() + wait
    while len(got) < n and time.monotonic() < deadline:
        got += sub.fetch(0.3, limit=n - len(got))
    return got


def test_a_killed_members_events_move_on_and_a_slow_ones_stay(
    url: str, namespace: str, bus: Bus, tmp_path: Path
) -> None:
    slow = bus.subscribe("workers", consumer="slow")  # (the group begins here)
    first = _events(5, "s")
    bus.publish(first)
    held = _fetch(slow, 5, HANDOVER_WAIT_S)  # its handler starts, and takes long
    held_since = time.monotonic()
    assert [d.event.id for d in held] == [e.id for e in first]

    doomed_events = _events(5, "d")
    bus.publish(doomed_events)  # the only member fetching now is the doomed one
    progress = tmp_path / "progress"
    child = subprocess.Popen(
        [sys.executable, "-c", MEMBER, url, namespace, "5", str(progress)],
        env=os.environ.copy(),
    )
    try:
        deadline = time.monotonic() + CHILD_START_S
        while not progress.exists() and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert progress.exists(), f"the member did not fetch (exit {child.poll()})"
        assert progress.read_text().split() == [e.id for e in doomed_events]
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait(10)

    survivor = bus.subscribe("workers", consumer="survivor")
    moved = _fetch(survivor, 5, HANDOVER_WAIT_S)
    assert sorted(d.event.id for d in moved) == sorted(e.id for e in doomed_events)
    # The slow handler holds its events past ack_wait (and past a survivor's next look
    # for stale ones): none of them goes to the survivor.
    while time.monotonic() - held_since < 1.5 * ACK_WAIT_SECONDS + 1:
        moved += survivor.fetch(0.5)
    assert sorted(d.event.id for d in moved) == sorted(e.id for e in doomed_events)
    slow.ack(held)
    survivor.ack(moved)
    assert survivor.fetch(0.5) == []
    survivor.close()
    slow.close()
