"""The limiters behind the sign-in brakes and the concurrent-stream limits, each contract run
against both implementations: in process, and in the real Redis on 127.0.0.1:6379 (what a
fleet of web processes shares). Time comes from an injected clock: nothing sleeps."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from mediaplane.accounts import (
    MAX_LOCKOUT_SECONDS,
    InProcessLimiter,
    InProcessStreams,
    Limiter,
    RedisLimiter,
    RedisStreams,
    StreamLimiter,
    StreamTracker,
    redis_client,
    signin_guard,
    stream_tracker,
)
from mediaplane.config import Settings


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0  # Unix seconds: Redis keys also expire in real time

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def prefix(request: pytest.FixtureRequest) -> Iterator[str]:
    """A key prefix of this test's own in Redis, its keys deleted afterwards."""
    name = f"mp_test_{uuid.uuid4().hex[:10]}"
    yield name
    if "redis_conn" in request.fixturenames:
        conn: redis.Redis = request.getfixturevalue("redis_conn")
        keys = list(conn.scan_iter(f"{name}:*"))
        if keys:
            conn.delete(*keys)


MakeLimiter = Callable[[int, float, Clock], Limiter]
MakeStreams = Callable[[float, Clock], StreamLimiter]


@pytest.fixture(params=["in_process", "redis"])
def make_limiter(request: pytest.FixtureRequest, prefix: str) -> MakeLimiter:
    if request.param == "in_process":
        return lambda n, lockout, clock: InProcessLimiter(n, lockout, clock=clock)
    conn: redis.Redis = request.getfixturevalue("redis_conn")
    return lambda n, lockout, clock: RedisLimiter(conn, n, lockout, prefix=prefix, clock=clock)


@pytest.fixture(params=["in_process", "redis"])
def make_streams(request: pytest.FixtureRequest, prefix: str) -> MakeStreams:
    if request.param == "in_process":
        return lambda ttl, clock: InProcessStreams(ttl, clock=clock)
    conn: redis.Redis = request.getfixturevalue("redis_conn")
    return lambda ttl, clock: RedisStreams(conn, ttl=ttl, prefix=prefix, clock=clock)


def _dead() -> redis.Redis:
    """The production client (:func:`redis_client`) of a Redis that is not there."""
    conn = redis_client(Settings(redis_url="redis://127.0.0.1:1/0"))
    assert conn is not None
    return conn


# --- sign-in brakes -----------------------------------------------------------------------


def test_a_key_locks_out_after_its_failures_and_each_further_one_doubles(
    make_limiter: MakeLimiter,
) -> None:
    clock = Clock()
    lim = make_limiter(3, 10.0, clock)
    for _ in range(2):
        lim.failed("account:a@example.org")
        assert lim.retry_after("account:a@example.org") == 0
    lim.failed("account:a@example.org")
    assert lim.retry_after("account:a@example.org") == pytest.approx(10.0)
    clock.now += 4
    assert lim.retry_after("account:a@example.org") == pytest.approx(6.0)
    clock.now += 6.5
    assert lim.retry_after("account:a@example.org") == 0
    lim.failed("account:a@example.org")
    assert lim.retry_after("account:a@example.org") == pytest.approx(20.0)
    for _ in range(40):  # capped at an hour, no overflow
        lim.failed("account:a@example.org")
    assert lim.retry_after("account:a@example.org") == pytest.approx(MAX_LOCKOUT_SECONDS)
    assert lim.retry_after("account:b@example.org") == 0
    lim.reset("account:a@example.org")
    assert lim.retry_after("account:a@example.org") == 0
    lim.failed("account:a@example.org")  # counting starts over after a reset
    assert lim.retry_after("account:a@example.org") == 0


def test_failures_an_hour_apart_start_over(make_limiter: MakeLimiter) -> None:
    clock = Clock()
    lim = make_limiter(2, 10.0, clock)
    lim.failed("address:10.0.0.1")
    clock.now += MAX_LOCKOUT_SECONDS + 1
    lim.failed("address:10.0.0.1")  # the first was forgotten: one failure, no lockout
    assert lim.retry_after("address:10.0.0.1") == 0
    lim.failed("address:10.0.0.1")
    assert lim.retry_after("address:10.0.0.1") == pytest.approx(10.0)


def test_two_redis_limiters_share_their_counts(redis_conn: redis.Redis, prefix: str) -> None:
    """Two web processes (two limiters, one Redis): failures on either brake both."""
    clock = Clock()
    one = RedisLimiter(redis_conn, 2, 10.0, prefix=prefix, clock=clock)
    two = RedisLimiter(redis_conn, 2, 10.0, prefix=prefix, clock=clock)
    one.failed("account:x@example.org")
    two.failed("account:x@example.org")
    assert one.retry_after("account:x@example.org") == pytest.approx(10.0)
    assert two.retry_after("account:x@example.org") == pytest.approx(10.0)
    # no e-mail address in the key names
    assert not [k for k in redis_conn.scan_iter(f"{prefix}:*") if b"example" in k]


def test_a_redis_that_is_down_leaves_sign_in_unbraked() -> None:
    dead = _dead()
    lim = RedisLimiter(dead, 1, 10.0)
    lim.failed("account:a@example.org")
    assert lim.retry_after("account:a@example.org") == 0
    lim.reset("account:a@example.org")


def test_the_settings_choose_the_limiters(tmp_path: Any) -> None:
    plain = Settings(data_dir=tmp_path)
    assert redis_client(plain) is None
    assert isinstance(signin_guard(plain).accounts, InProcessLimiter)
    assert isinstance(stream_tracker(plain).limiter, InProcessStreams)
    shared = Settings(data_dir=tmp_path, redis_url="redis://127.0.0.1:6379/0")
    conn = redis_client(shared)
    assert conn is not None
    assert isinstance(signin_guard(shared, conn).addresses, RedisLimiter)
    tracker = stream_tracker(shared, conn)
    assert isinstance(tracker.limiter, RedisStreams) and tracker.limiter.ttl == 45.0
    assert "redis" not in repr(shared)  # a URL with a password stays out of reprs


# --- concurrent streams -------------------------------------------------------------------


def test_the_limit_refuses_the_next_start_and_heartbeats_keep_streams(
    make_streams: MakeStreams,
) -> None:
    clock = Clock()
    streams = make_streams(45.0, clock)
    assert streams.claim("u1", "s1", 2) and streams.claim("u1", "s2", 2)
    assert not streams.claim("u1", "s3", 2)  # the third start
    assert streams.active("u1") == 2
    assert streams.claim("u1", "s1", 2)  # a heartbeat of a live stream is no start
    assert streams.claim("u2", "s3", 2)  # another account has its own
    assert streams.claim("u1", "s9", 0)  # 0: no limit
    assert streams.active("u1") == 3


def test_a_stream_frees_itself_when_its_heartbeats_stop(make_streams: MakeStreams) -> None:
    clock = Clock()
    streams = make_streams(45.0, clock)
    assert streams.claim("u1", "old", 1)
    clock.now += 30
    assert streams.claim("u1", "old", 1)  # a heartbeat at 30 s: lives till 75 s
    clock.now += 44
    assert not streams.claim("u1", "new", 1)
    clock.now += 1  # 45 s after the last heartbeat
    assert streams.active("u1") == 0
    assert streams.claim("u1", "new", 1)
    # the old one comes back: it is a new start now, refused at the limit
    assert not streams.claim("u1", "old", 1)


def test_a_released_stream_frees_its_place_at_once(make_streams: MakeStreams) -> None:
    clock = Clock()
    streams = make_streams(45.0, clock)
    assert streams.claim("u1", "a", 1)
    streams.release("u1", "a")
    streams.release("u1", "never-claimed")
    assert streams.active("u1") == 0
    assert streams.claim("u1", "b", 1)


def test_two_redis_limiters_hold_one_limit(redis_conn: redis.Redis, prefix: str) -> None:
    clock = Clock()
    one = RedisStreams(redis_conn, ttl=45.0, prefix=prefix, clock=clock)
    two = RedisStreams(redis_conn, ttl=45.0, prefix=prefix, clock=clock)
    assert one.claim("u1", "a", 2) and two.claim("u1", "b", 2)
    assert not one.claim("u1", "c", 2) and not two.claim("u1", "c", 2)
    assert two.claim("u1", "a", 2)  # the heartbeat of one's stream, through two


def test_the_in_process_limiter_stays_bounded() -> None:
    clock = Clock()
    streams = InProcessStreams(45.0, clock=clock, max_accounts=10)
    for i in range(100):
        assert streams.claim(f"u{i}", "s", 1)
    assert len(streams._accounts) <= 10 and streams.active("u99") == 1


def test_the_tracker_renews_at_most_once_per_interval() -> None:
    clock = Clock()
    calls: list[tuple[str, str, int]] = []

    class Counting(InProcessStreams):
        def claim(self, account: str, stream: str, limit: int) -> bool:
            calls.append((account, stream, limit))
            return super().claim(account, stream, limit)

    tracker = StreamTracker(Counting(45.0, clock=clock), interval=3600.0)
    stream = tracker.start("u1", 1)
    assert stream is not None and calls == [("u1", stream, 1)]
    assert not tracker.due(stream)  # just claimed: requests renew nothing
    assert tracker.start("u1", 1) is None  # a second start
    assert tracker.start("u1", 1, stream) == stream  # the same stream again (a reload)
    assert tracker.due("unknown")  # another process's stream: renewed on its first request
    tracker.release("u1", stream)
    assert tracker.due(stream) and tracker.limiter.active("u1") == 0


def test_a_tracker_on_a_redis_that_is_down_lets_streams_play() -> None:
    dead = _dead()
    tracker = StreamTracker(RedisStreams(dead, ttl=45.0))
    assert tracker.start("u1", 1) is not None
    assert tracker.beat("u1", "s", 1)
    tracker.release("u1", "s")
