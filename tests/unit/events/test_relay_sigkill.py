"""The relay killed with SIGKILL in the middle of a batch (its process, on SQLite, Redis
Streams as the bus): after a restart the consumer sees every event, none lost, and the
only duplicates are the killed batch's events already on the bus, with the same ids."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import redis

from mediaplane.events import EventType, Relay, backlog, emit, open_bus
from tests.support import migrated_runtime, port_open, skip_or_fail

URL = "redis://127.0.0.1:6379/0"
BATCH = 100
#: The child relay stops (and is killed) after this many events reached the bus: the
#: first batch published and marked, half of the second on the bus, unmarked.
KILL_AFTER = 150

#: A relay process whose bus blocks after KILL_AFTER events: the moment to kill it.
CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from mediaplane.db import Database
    from mediaplane.events import Relay, open_bus

    db_url, bus_url, namespace, progress, kill_after, batch = sys.argv[1:]
    db = Database(db_url)
    bus = open_bus(bus_url, db, namespace)

    class StallingBus:
        description = "redis, stalling"
        published = 0

        def publish(self, events):
            for event in events:
                bus.publish([event])
                StallingBus.published += 1
                if StallingBus.published == int(kill_after):
                    Path(progress).write_text(str(StallingBus.published))
                    time.sleep(120)  # killed here, mid-batch

    Relay(db, StallingBus(), batch=int(batch), lease_seconds=1.0).drain()
    """
)


def test_a_relay_killed_mid_batch_loses_nothing(tmp_path: Path) -> None:
    if not port_open("127.0.0.1", 6379):
        skip_or_fail("Redis is not listening on 127.0.0.1:6379")
    ns = f"mp_test_{uuid.uuid4().hex[:10]}"
    progress = tmp_path / "progress"
    client = redis.Redis.from_url(URL)
    try:
        with migrated_runtime("sqlite", tmp_path) as rt:
            with rt.db.session() as s:
                ids = [
                    emit(s, EventType.ASSET_UPDATED, "asset", f"a{i % 7}", {"n": i}).id
                    for i in range(300)
                ]
            bus = open_bus(URL, None, ns)
            reader = bus.subscribe("audit", consumer="c1", from_start=True)
            child = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    CHILD,
                    str(rt.settings.database_url),
                    URL,
                    ns,
                    str(progress),
                    str(KILL_AFTER),
                    str(BATCH),
                ],
                start_new_session=True,
            )
            try:
                deadline = time.monotonic() + 60
                while not progress.exists():
                    assert child.poll() is None, "the relay process exited early"
                    assert time.monotonic() < deadline, "the relay did not get to the kill"
                    time.sleep(0.02)
            finally:
                os.kill(child.pid, signal.SIGKILL)
                child.wait(10)
            with rt.db.session() as s:
                assert backlog(s) == 300 - BATCH  # the killed batch was never marked

            restarted = Relay(rt.db, bus, batch=BATCH, lease_seconds=1.0)
            deadline = time.monotonic() + 30
            while True:  # the dead relay's lease expires after its second
                restarted.drain()
                with rt.db.session() as s:
                    if backlog(s) == 0:
                        break
                assert time.monotonic() < deadline, "the restarted relay did not drain"
                time.sleep(0.2)
            restarted.release()

            got = []
            deadline = time.monotonic() + 30
            while len(got) < 300 + KILL_AFTER - BATCH and time.monotonic() < deadline:
                batch = reader.fetch(0.5, limit=500)
                reader.ack(batch)
                got += batch
            assert reader.fetch(0.2) == []
            reader.close()
            bus.close()
    finally:
        client.delete(f"{ns}:events")
        client.close()

    seen = [d.event.id for d in got]
    assert set(seen) == set(ids)  # none lost
    assert list(dict.fromkeys(seen)) == ids  # in outbox order, first time each
    twice = [i for i in dict.fromkeys(seen) if seen.count(i) > 1]
    assert twice == ids[BATCH:KILL_AFTER]  # on the bus before the kill, sent again
    by_id = {}
    for d in got:  # a duplicate is the same event: same id, same content
        assert by_id.setdefault(d.event.id, d.event.to_json()) == d.event.to_json()
