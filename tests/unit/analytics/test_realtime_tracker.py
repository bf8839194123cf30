"""The real-time tracker's contract, on both implementations: in process, and in the real
Redis on 127.0.0.1:6379 (what a fleet of web processes shares). Time comes from an injected
clock (Unix ms): nothing sleeps."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest
import redis

from mediaplane.analytics import (
    BeaconEvent,
    InProcessRealtime,
    Realtime,
    RedisRealtime,
    ViewUpdate,
    view_update,
)

T0 = 1_800_000_000_000
WINDOW = 15.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> int:
        return self.now


Make = Callable[[Clock], Realtime]


@pytest.fixture(params=["in_process", "redis"])
def make(request: pytest.FixtureRequest) -> Iterator[Make]:
    if request.param == "in_process":
        yield lambda clock: InProcessRealtime(window_s=WINDOW, clock=clock)
        return
    conn: redis.Redis = request.getfixturevalue("redis_conn")
    prefix = f"mp_test_{uuid.uuid4().hex[:10]}"
    yield lambda clock: RedisRealtime(conn, WINDOW, prefix=prefix, clock=clock)
    keys = list(conn.scan_iter(f"{prefix}:*"))
    if keys:
        conn.delete(*keys)


def ev(i: int, kind: str, **fields: object) -> BeaconEvent:
    return BeaconEvent.model_validate({"id": str(i), "type": kind, "ts": 1, **fields})


def update(view: str, *events: tuple[BeaconEvent, int], pid: str = "pa") -> ViewUpdate:
    u = view_update(pid, view, events)
    assert u is not None
    return u


def test_views_count_while_their_newest_event_is_in_the_window(make: Make) -> None:
    clock = Clock()
    rt = make(clock)
    rt.update(update("v1", (ev(1, "view_start"), T0 - 1000)))
    rt.update(update("v2", (ev(1, "view_start"), T0), (ev(2, "heartbeat"), T0)))
    rt.update(update("v3", (ev(1, "view_start"), T0), pid="pb"))
    assert rt.figures(["pa"]).viewers == 2
    assert rt.figures(["pa", "pb"]).viewers == 3
    assert rt.figures(["nobody"]).viewers == 0
    clock.now = T0 + 14_500  # v1's last event is 15.5 s old now: it left
    assert rt.figures(["pa"]).viewers == 1
    rt.update(update("v1", (ev(3, "heartbeat"), clock.now)))  # back (a late heartbeat)
    assert rt.figures(["pa"]).viewers == 2
    clock.now += 16_000
    assert rt.figures(["pa", "pb"]).viewers == 0


def test_an_ended_view_stops_counting_at_once_and_late_batches_do_not_revive_it(
    make: Make,
) -> None:
    clock = Clock()
    rt = make(clock)
    rt.update(update("v1", (ev(1, "view_start"), T0 - 2000), (ev(2, "end"), T0)))
    # a retried batch from before the end arrives after it
    rt.update(update("v1", (ev(3, "heartbeat"), T0 - 1000)))
    rt.update(update("v2", (ev(1, "error", code="x", fatal=True), T0)))  # a fatal error ends
    assert rt.figures(["pa"]).viewers == 0


def test_live_qoe_rebuffering_bitrate_and_errors_of_the_last_minute(make: Make) -> None:
    clock = Clock()
    rt = make(clock)
    rt.update(
        update(
            "v1",
            (ev(1, "first_frame", startup_ms=500), T0 - 5000),
            (ev(2, "rendition_switch", bitrate=800_000), T0 - 4000),
            (ev(3, "rebuffer_start"), T0 - 1000),
            (ev(4, "error", code="frag", fatal=False), T0 - 900),
        )
    )
    # the bitrate of a batch sent earlier but received later does not replace the newer one
    rt.update(update("v1", (ev(0, "rendition_switch", bitrate=300_000), T0 - 4500)))
    rt.update(update("v2", (ev(1, "heartbeat", bitrate=2_000_000), T0)))
    f = rt.figures(["pa"])
    assert (f.viewers, f.rebuffering, f.average_bitrate, f.errors_last_minute) == (
        2,
        1,
        1_400_000,
        1,
    )
    # a replayed batch counts its error once; the stall ends
    rt.update(update("v1", (ev(4, "error", code="frag", fatal=False), T0 - 900)))
    rt.update(update("v1", (ev(5, "rebuffer_end", duration_ms=1200), T0 + 200)))
    f = rt.figures(["pa"])
    assert (f.rebuffering, f.errors_last_minute) == (0, 1)
    rt.update(update("v2", (ev(2, "heartbeat"), T0 + 55_000)))
    clock.now = T0 + 60_000  # the error is more than a minute old
    f = rt.figures(["pa"])
    assert (f.viewers, f.errors_last_minute, f.average_bitrate) == (1, 0, 2_000_000)


def test_two_redis_trackers_share_their_views(redis_conn: redis.Redis) -> None:
    """Two web processes (two trackers, one Redis): a view one took counts on the other."""
    clock = Clock()
    prefix = f"mp_test_{uuid.uuid4().hex[:10]}"
    one = RedisRealtime(redis_conn, WINDOW, prefix=prefix, clock=clock)
    two = RedisRealtime(redis_conn, WINDOW, prefix=prefix, clock=clock)
    try:
        one.update(update("v1", (ev(1, "view_start"), T0)))
        two.update(update("v2", (ev(1, "view_start"), T0)))
        assert one.figures(["pa"]).viewers == two.figures(["pa"]).viewers == 2
    finally:
        redis_conn.delete(*redis_conn.scan_iter(f"{prefix}:*"))


def test_redis_keys_stay_bounded_by_the_window_without_readers(redis_conn: redis.Redis) -> None:
    """Updates alone (nobody asks for the figures) forget views older than the window."""
    clock = Clock()
    prefix = f"mp_test_{uuid.uuid4().hex[:10]}"
    rt = RedisRealtime(redis_conn, WINDOW, prefix=prefix, clock=clock)
    try:
        for n in range(50):
            rt.update(update(f"old{n}", (ev(1, "error", code="x"), T0)))
        clock.now = T0 + 120_000
        rt.update(update("new", (ev(1, "view_start"), clock.now)))
        base = f"{prefix}:realtime:pa"
        assert redis_conn.hkeys(base + ":views") == [b"new"]
        assert redis_conn.zcard(base + ":seen") == 1 and redis_conn.zcard(base + ":errors") == 0
    finally:
        redis_conn.delete(*redis_conn.scan_iter(f"{prefix}:*"))


def test_a_redis_that_is_down_loses_updates_without_raising() -> None:
    dead = redis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    rt = RedisRealtime(dead, WINDOW, clock=Clock())
    rt.update(update("v1", (ev(1, "view_start"), T0)))
    assert rt.figures(["pa"]).viewers == 0
