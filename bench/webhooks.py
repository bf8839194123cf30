"""Webhooks benchmark: commit-to-webhook latency with a healthy loopback endpoint
(target: p99 < 1 s).

What it measures
    ``--events`` changes committed one per transaction, each emitting one
    ``video.asset.updated`` event (``mediaplane.events.emit`` in a session, about 1.3 KB
    of JSON), paced ``--gap`` seconds apart on average (uniform jitter, so commits land
    at every phase of the pollers). In the same process, as ``app.py`` wires them: the
    relay (``Relay`` on the in-process bus with ``webhooks.fan_out`` as its
    ``on_published``; ``events_relay_interval_seconds`` idle) and a
    ``webhooks.Dispatcher`` (``Dispatcher.of(settings)``), each in a loop of its own. One
    endpoint subscribed to ``video.asset.*`` on a loopback receiver (http.server) that
    notes when each event id arrives. Latency = arrival - the commit's return.

Two modes, same run
    ``poll``: the dispatcher only polls (``events_relay_interval_seconds`` when idle),
    so an event waits for the relay's poll and then for the dispatcher's.
    ``wake``: the relay wakes the dispatcher after a batch's fan-out committed, and a
    sender thread that finishes wakes it too (what ``app.py`` does), so an event waits
    for the relay's poll only.

Usage::

    .venv/bin/python bench/webhooks.py [--events 150] [--gap 0.1] [--database URL]
"""

from __future__ import annotations

import argparse
import contextlib
import http.server
import logging
import random
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from mediaplane.config import Settings
from mediaplane.db import Database, migrate
from mediaplane.events import EventType, InProcessBus, Relay, emit
from mediaplane.webhooks import (
    Dispatcher,
    create_endpoint,
    delete_endpoint,
    fan_out,
    list_endpoints,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

from events import payload  # bench/events.py: the same asset payload

TARGET_P99 = 1.0


class Arrivals:
    """A loopback endpoint answering 200 at once, noting each event id's arrival time."""

    def __init__(self) -> None:
        self.at: dict[str, float] = {}
        self.cond = threading.Condition()
        arrivals = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                now = time.perf_counter()
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")
                with arrivals.cond:
                    arrivals.at.setdefault(self.headers["Mediaplane-Event-Id"], now)
                    arrivals.cond.notify_all()

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def wait_for(self, ids: set[str], timeout: float) -> None:
        with self.cond:
            self.cond.wait_for(lambda: ids <= self.at.keys(), timeout)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def run(
    db: Database, settings: Settings, arrivals: Arrivals, n: int, gap: float, wake: bool
) -> list[float]:
    """Latencies (seconds) of ``n`` events from commit to the endpoint."""
    interval = settings.events_relay_interval_seconds
    relay = Relay(db, InProcessBus(db), on_published=fan_out)
    dispatcher = Dispatcher.of(db, settings)
    stop = threading.Event()

    def relaying() -> None:  # app._relay
        while not stop.is_set():
            published = relay.tick()
            if published and wake:
                dispatcher.wake()
            if published < relay.batch:
                time.sleep(interval)

    def dispatching() -> None:  # app._webhooks
        while not stop.is_set():
            if not dispatcher.tick():
                if wake:
                    dispatcher.idle(interval)
                else:
                    time.sleep(interval)

    threads = [threading.Thread(target=relaying), threading.Thread(target=dispatching)]
    for t in threads:
        t.start()
    committed: dict[str, float] = {}
    rng = random.Random(1)
    try:
        for i in range(n):
            with db.session() as s:
                event = emit(s, EventType.ASSET_UPDATED, "asset", f"{i % 100:024x}", payload(i))
            committed[event.id] = time.perf_counter()
            time.sleep(rng.uniform(0, 2 * gap))
        arrivals.wait_for(set(committed), 60)
    finally:
        stop.set()
        dispatcher.wake()
        for t in threads:
            t.join()
        dispatcher.wait(10)
        dispatcher.close()
        relay.release()
    missing = set(committed) - arrivals.at.keys()
    assert not missing, f"{len(missing)} of {n} events never arrived"
    return [arrivals.at[k] - v for k, v in committed.items()]


def quantile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q * 100) - 1]


@contextlib.contextmanager
def database(url: str | None) -> Iterator[Database]:
    with tempfile.TemporaryDirectory() as tmp:
        url = url or f"sqlite:///{Path(tmp) / 'bench.sqlite'}"
        migrate(url)
        db = Database(url)
        with db.session() as s:  # a --database from an earlier run: its endpoints go
            for endpoint in list_endpoints(s):
                delete_endpoint(s, endpoint.id)
        try:
            yield db
        finally:
            db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=150)
    parser.add_argument("--gap", type=float, default=0.1, help="mean seconds between commits")
    parser.add_argument("--database", help="a PostgreSQL URL (default: SQLite in a temp dir)")
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    settings = Settings(webhook_allow=["127.0.0.1/32"])
    interval = settings.events_relay_interval_seconds
    print(
        f"{args.events} events, one per commit, ~{args.gap * 1000:.0f} ms apart; relay and "
        f"dispatcher poll every {interval} s when idle; 1 loopback endpoint"
    )
    arrivals = Arrivals()
    try:
        for mode in ("poll", "wake"):
            with database(args.database) as db:
                with db.session() as s:
                    create_endpoint(s, arrivals.url, ["video.asset.*"], settings.webhook_allow)
                lat = run(db, settings, arrivals, args.events, args.gap, wake=mode == "wake")
            p50, p95, p99 = (quantile(lat, q) for q in (0.5, 0.95, 0.99))
            verdict = "met" if p99 < TARGET_P99 else "NOT met"
            print(
                f"{mode:>4}: p50 {p50 * 1000:6.0f} ms  p95 {p95 * 1000:6.0f} ms  "
                f"p99 {p99 * 1000:6.0f} ms  max {max(lat) * 1000:6.0f} ms  "
                f"(target p99 < {TARGET_P99:.0f} s: {verdict})"
            )
    finally:
        arrivals.close()


if __name__ == "__main__":
    main()
