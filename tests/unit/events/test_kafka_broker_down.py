"""The Kafka broker (tansu, started here) stopped under a running relay: each relay attempt
fails within a few seconds, the events wait in the outbox and count as its backlog, and
when the broker is back they reach the topic in order per object.

tansu keeps its data in memory, so the restarted broker begins empty (as a broker that
lost its disk would): the bus makes the topic again before it publishes."""

from __future__ import annotations

import time
import uuid
from contextlib import ExitStack
from pathlib import Path

import pytest

from mediaplane.events import BusUnavailable, Delivery, EventType, Relay, backlog, emit
from mediaplane.events._kafka import PUBLISH_TIMEOUT
from tests.support import free_port, migrated_runtime
from tests.tansu import running_tansu

#: Longer than any one attempt may take (the old bound was 10 s per attempt).
ATTEMPT_BOUND_S = PUBLISH_TIMEOUT + 2
WAIT_S = 30.0


def test_a_stopped_broker_costs_seconds_and_the_backlog_drains_in_order(tmp_path: Path) -> None:
    port = free_port()
    ns = f"mp_test_{uuid.uuid4().hex[:10]}"
    with ExitStack() as stack:
        broker = ExitStack()
        address = broker.enter_context(running_tansu(tmp_path, port))
        stack.callback(broker.close)
        url = f"kafka://{address}?partitions=4"
        rt = stack.enter_context(
            migrated_runtime("sqlite", tmp_path, events_url=url, queue_namespace=ns)
        )
        stack.callback(rt.bus.close)
        relay = Relay(rt.db, rt.bus, batch=25)
        with rt.db.session() as s:
            for i in range(5):
                emit(s, EventType.ASSET_UPDATED, "asset", f"a{i % 3}", {"n": -1})
        assert relay.drain() == 5  # the relay runs; then the broker stops

        broker.close()
        emitted: list[tuple[str, str]] = []  # (object, event id) in commit order
        for batch in range(6):
            with rt.db.session() as s:
                for i in range(10):
                    obj = f"a{(batch + i) % 4}"
                    emitted.append((obj, emit(s, EventType.ASSET_UPDATED, "asset", obj, {}).id))
        for _ in range(2):
            started = time.monotonic()
            with pytest.raises(BusUnavailable):
                relay.tick()
            assert time.monotonic() - started < ATTEMPT_BOUND_S
        with rt.db.session() as s:
            assert backlog(s) == 60  # what /readyz and mediaplane_events_backlog report

        stack.enter_context(running_tansu(tmp_path, port))  # back, on the same address
        published, deadline = 0, time.monotonic() + WAIT_S
        while published < 60 and time.monotonic() < deadline:
            try:  # as the relay's loop does: try again after a failure
                published += relay.tick()
            except BusUnavailable:
                time.sleep(0.2)
        assert published == 60
        with rt.db.session() as s:
            assert backlog(s) == 0

        tail = rt.bus.subscribe(None, from_start=True)
        got: list[Delivery] = []
        deadline = time.monotonic() + WAIT_S
        while len({d.event.id for d in got}) < 60 and time.monotonic() < deadline:
            got += tail.fetch(0.3)
        tail.close()
    assert {d.event.id for d in got} == {e for _, e in emitted}
    for obj in {o for o, _ in emitted}:  # each object's events in commit order
        seen: list[str] = []
        for d in got:
            if d.event.object_id == obj and d.event.id not in seen:
                seen.append(d.event.id)
        assert seen == [e for o, e in emitted if o == obj]
