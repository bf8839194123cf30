"""Events benchmark: events/s from commit to consumer on the Redis Streams bus, against
redis-py publishing the same payloads straight to a stream.

What it measures
    ``--events`` events (the asset resource as the API returns it, about 1.3 KB of JSON
    each) committed to the outbox of a fresh database (SQLite in a temporary folder, or
    ``--database postgresql://…``), ``--per-commit`` events per transaction, by one
    producer thread; one relay (``mediaplane.events.Relay``, as the web process runs it:
    batches of 500, ``events_relay_interval_seconds`` when idle) publishes them to Redis;
    one ``mediaplane.events.consume`` consumer in a group reads them. Events/s = events /
    seconds from the first commit to the last event consumed.

Baselines
    The same payloads XADDed by redis-py straight to a stream (``--per-commit`` per
    pipeline round trip: what an app that publishes as it commits would send) and read
    by an XREADGROUP/XACK consumer reading 100 at a time: no database, no outbox, no
    at-least-once guarantee. Same run, same Redis. The ratio is ours / baseline. Second,
    the dual write the outbox replaces: each of those pipelines sent after a commit that
    changes one row of the same database (events lost when the process dies between).

Usage::

    .venv/bin/python bench/events.py [--events 20000] [--per-commit 1] [--repeat 3]
        [--database URL]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import redis
from sqlalchemy import update

from mediaplane.db import Database, migrate, utcnow
from mediaplane.events import Event, EventType, Relay, consume, emit, open_bus
from mediaplane.jobs import JobLease

if TYPE_CHECKING:
    from collections.abc import Callable

URL = "redis://127.0.0.1:6379/0"


def payload(i: int) -> dict[str, Any]:
    """An asset in the API's shape (what ``video.asset.updated`` carries)."""
    aid = f"{i:024x}"
    base = "http://127.0.0.1:8080"
    return {
        "id": aid,
        "title": f"Benchmark asset {i}",
        "status": "ready",
        "created_at": datetime.now(UTC).isoformat(),
        "duration": 12.0,
        "aspect_ratio": "16:9",
        "max_resolution": "720p",
        "max_frame_rate": 30.0,
        "source_filename": "bench.mp4",
        "tracks": [
            {"type": "video", "max_width": 1280, "max_height": 720, "codec": "h264"},
            {"type": "audio", "id": "a0", "codec": "aac", "channels": 2, "language": "en"},
        ],
        "playback_ids": [{"id": f"p{aid}", "policy": "public"}],
        "errors": None,
        "content_hash": "0" * 64,
        "duplicate_of": None,
        "audio_match_of": None,
        "audio_fingerprint_status": "done",
        "progress": 100.0,
        "renditions": [
            {"id": f"v{h}", "type": "video", "status": "ready", "height": h, "complete": True}
            for h in (240, 360, 480, 720)
        ],
        "source_type": "creator_upload",
        "moderation": "not_required",
        "channel_id": None,
        "rights": None,
        "passthrough": None,
        "playback": {
            "hls": f"{base}/play/p{aid}/master.m3u8",
            "dash": f"{base}/play/p{aid}/manifest.mpd",
            "watch": f"{base}/watch/p{aid}",
            "thumbnail": f"{base}/play/p{aid}/thumbnail.jpg",
        },
    }


def run_outbox(db: Database, n: int, per_commit: int, namespace: str) -> float:
    """Events/s from commit to consumer through the outbox, the relay and Redis."""
    bus = open_bus(URL, db, namespace)
    relay = Relay(db, bus, batch=500)
    stop = threading.Event()
    got = 0
    done = threading.Event()
    events = consume(URL, "bench", namespace=namespace, consumer="c1", poll_seconds=0.2)
    # The group exists before the first commit (a new group starts at the stream's end).
    bus.subscribe("bench", consumer="c1")

    def consumer() -> None:
        nonlocal got
        for _ in events:
            got += 1
            if got == n:
                done.set()
                return

    def relaying() -> None:
        while not stop.is_set():
            if relay.tick() < relay.batch:
                time.sleep(0.2)  # the default events_relay_interval_seconds

    c = threading.Thread(target=consumer)
    c.start()
    time.sleep(0.3)
    r = threading.Thread(target=relaying)
    started = time.perf_counter()
    r.start()
    for start in range(0, n, per_commit):
        with db.session() as s:
            for i in range(start, min(n, start + per_commit)):
                emit(s, EventType.ASSET_UPDATED, "asset", f"{i % 100:024x}", payload(i))
    done.wait(600)
    elapsed = time.perf_counter() - started
    stop.set()
    r.join()
    c.join()
    events.close()
    relay.release()
    bus.close()
    assert got == n, got
    return n / elapsed


def run_direct(
    n: int, per_commit: int, stream: str, commit: Callable[[], object] | None = None
) -> float:
    """Events/s for redis-py XADDing the same event JSON and an XREADGROUP consumer;
    ``commit`` runs before each pipeline (the dual write: commit, then publish)."""
    client = redis.Redis.from_url(URL)
    client.xgroup_create(stream, "bench", id="$", mkstream=True)
    got = 0
    done = threading.Event()

    def consumer() -> None:
        nonlocal got
        reader = redis.Redis.from_url(URL)
        while got < n:
            resp: Any = reader.xreadgroup("bench", "c1", {stream: ">"}, count=100, block=200)
            if resp:
                entries = resp[0][1]
                for _, fields in entries:
                    Event.loads(fields[b"event"])
                got += len(entries)
                reader.xack(stream, "bench", *[e[0] for e in entries])
        done.set()
        reader.close()

    c = threading.Thread(target=consumer)
    c.start()
    time.sleep(0.3)
    started = time.perf_counter()
    for start in range(0, n, per_commit):
        if commit is not None:
            commit()
        pipe = client.pipeline(transaction=False)
        for i in range(start, min(n, start + per_commit)):
            event = Event(
                str(EventType.ASSET_UPDATED),
                str(uuid.uuid4()),
                datetime.now(UTC),
                "asset",
                f"{i % 100:024x}",
                payload(i),
            )
            pipe.xadd(stream, {b"event": event.dumps()})
        pipe.execute()
    done.wait(600)
    elapsed = time.perf_counter() - started
    c.join()
    client.delete(stream)
    client.close()
    return n / elapsed


def lease_touch(db: Database) -> Callable[[], object]:
    """A transaction that changes one row (a lease's expiry): the commit a change costs."""
    name = f"bench-{uuid.uuid4().hex[:8]}"
    with db.session() as s:
        s.add(JobLease(name=name, holder="bench", expires_at=utcnow()))

    def commit() -> None:
        with db.session() as s:
            s.execute(update(JobLease).where(JobLease.name == name).values(expires_at=utcnow()))

    return commit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--per-commit", type=int, default=1)
    parser.add_argument("--database", help="a PostgreSQL URL (default: SQLite in a temp dir)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each; medians printed")
    args = parser.parse_args()
    direct: list[float] = []
    dual: list[float] = []
    ours: list[float] = []
    for _ in range(args.repeat):  # alternated: a busy machine slows both alike
        ns = f"mp_bench_{uuid.uuid4().hex[:8]}"
        with tempfile.TemporaryDirectory() as tmp:
            url = args.database or f"sqlite:///{Path(tmp) / 'bench.sqlite'}"
            migrate(url)
            db = Database(url)
            try:
                direct.append(run_direct(args.events, args.per_commit, f"{ns}:direct"))
                touch = lease_touch(db)
                dual.append(run_direct(args.events, args.per_commit, f"{ns}:dual", touch))
                ours.append(run_outbox(db, args.events, args.per_commit, ns))
            finally:
                db.dispose()
                client = redis.Redis.from_url(URL)
                client.delete(f"{ns}:events")
                client.close()
    d, w, o = statistics.median(direct), statistics.median(dual), statistics.median(ours)
    kind = "PostgreSQL" if args.database else "SQLite"
    print(
        f"events: {args.events} x {args.repeat} runs, {args.per_commit} per commit, outbox on {kind}"
    )
    print(f"redis-py XADD straight to the stream:     {d:9.0f} events/s  {_runs(direct)}")
    print(f"a commit, then XADD (the dual write):     {w:9.0f} events/s  {_runs(dual)}")
    print(f"outbox → relay → Redis Streams → consume: {o:9.0f} events/s  {_runs(ours)}")
    print(f"ratio (outbox / direct, medians): {o / d:.2f}  (target ≥ 0.5)")
    print(f"ratio (outbox / dual write, medians): {o / w:.2f}")


def _runs(values: list[float]) -> str:
    return "(" + ", ".join(f"{v:.0f}" for v in values) + ")"


if __name__ == "__main__":
    main()
