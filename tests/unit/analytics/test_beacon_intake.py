"""Beacon batches as untrusted input: schema, per-event rejection, clock clamping,
pseudonyms, rate limits."""

from __future__ import annotations

import json
import os
import stat
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from mediaplane.analytics import (
    EVENT_COLUMNS,
    MAX_EVENTS,
    InProcessRate,
    Intake,
    InvalidBeacon,
    Pseudonymizer,
    RateLimited,
    RedisRate,
    beacon_intake,
    ensure_analytics_key,
    parse_batch,
)
from mediaplane.config import Settings
from mediaplane.runtime import Runtime

NOW = 1_780_000_000_000  # ms


def body(events: list[Any], **envelope: Any) -> bytes:
    doc = {
        "view_id": "view-1",
        "playback_id": "pb1",
        "player": {"name": "hls.js", "version": "1.6.0"},
        "events": events,
        **envelope,
    }
    return json.dumps(doc).encode()


def ev(i: int = 0, **fields: Any) -> dict[str, Any]:
    return {"id": f"e{i}", "type": "heartbeat", "ts": NOW, **fields}


def test_a_bad_event_is_rejected_alone_and_counted() -> None:
    events = [
        ev(1, position_s=1.5, rendition="720p", bitrate=2_000_000),
        ev(2, type="warp"),  # unknown type
        ev(3, extra=1),  # extra field
        ev(4, bitrate=-1),
        ev(5, message="x" * 1000),  # too long
        "not an object",
        ev(7, type="first_frame", startup_ms=640),
    ]
    batch, good, bad = parse_batch(body(events))
    assert [e.id for e in good] == ["e1", "e7"]
    assert [r.index for r in bad] == [1, 2, 3, 4, 5]
    assert "type" in bad[0].message and "extra" in bad[1].message


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"[]",
        body([], view_id=""),
        body([], view_id="has space"),
        body([], playback_id="UPPER"),
        body([], player={"name": "x", "version": "1", "os": "linux"}),
        body([], surprise=True),
        body([ev(i) for i in range(MAX_EVENTS + 1)]),
        body([], sent_at=-5),
    ],
)
def test_a_bad_envelope_refuses_the_batch(raw: bytes) -> None:
    with pytest.raises(InvalidBeacon):
        parse_batch(raw)


def rows_of(raw: bytes, skew_ms: int = 300_000, received: int = NOW) -> list[tuple[Any, ...]]:
    batch, good, _ = parse_batch(raw)
    return Intake(skew_ms).rows(batch, good, received, viewer="v", address=None, user_agent=None)


TS = list(EVENT_COLUMNS).index("ts_ms")


def test_times_are_clamped_into_the_skew_bound() -> None:
    rows = rows_of(
        body([ev(1, ts=NOW + 3_600_000), ev(2, ts=NOW - 86_400_000), ev(3, ts=NOW - 10)])
    )
    assert [r[TS] for r in rows] == [NOW, NOW - 300_000, NOW - 10]


def test_a_skewed_player_clock_is_shifted_by_its_offset_keeping_intervals() -> None:
    # the player's clock is 2 hours behind: sent_at says so, events keep their spacing
    late = NOW - 7_200_000
    raw = body([ev(1, ts=late - 4000), ev(2, ts=late - 1000)], sent_at=late)
    assert [r[TS] for r in rows_of(raw)] == [NOW - 4000, NOW - 1000]
    # within the tolerance, the player's times are kept as they are
    raw = body([ev(1, ts=NOW - 4000)], sent_at=NOW - 1500)
    assert [r[TS] for r in rows_of(raw)] == [NOW - 4000]


def test_rows_have_every_column() -> None:
    (row,) = rows_of(body([ev(1, type="error", code="MEDIA_ERR", fatal=True)]))
    assert len(row) == len(EVENT_COLUMNS)
    named = dict(zip(EVENT_COLUMNS, row, strict=True))
    assert named["code"] == "MEDIA_ERR" and named["fatal"] == "true"
    assert named["player_name"] == "hls.js" and named["view_id"] == "view-1"


def test_the_players_size_is_bounded_and_lands_in_its_columns() -> None:
    events = [
        ev(1, player_width=1920, player_height=1080, height=720),
        ev(2, player_height=20_000),  # larger than any screen
        ev(3, player_width=-1),
    ]
    batch, good, bad = parse_batch(body(events))
    assert [r.index for r in bad] == [1, 2]
    (row,) = Intake(10**6).rows(batch, good, NOW, viewer="v", address=None, user_agent=None)
    named = dict(zip(EVENT_COLUMNS, row, strict=True))
    assert (named["player_width"], named["player_height"], named["height"]) == (1920, 1080, 720)


def test_the_cdn_host_is_checked_and_the_country_comes_from_the_server() -> None:
    events = [
        ev(1, cdn="CDN-b.Example.com:443"),
        ev(2, cdn="https://cdn.example.com/x"),  # a URL, not a host
        ev(3, cdn="a" * 300),
    ]
    batch, good, bad = parse_batch(body(events))
    assert [r.index for r in bad] == [1, 2]
    (row,) = Intake(10**6).rows(
        batch, good, NOW, viewer="v", address=None, user_agent=None, country="FR"
    )
    named = dict(zip(EVENT_COLUMNS, row, strict=True))
    assert (named["cdn"], named["country"]) == ("cdn-b.example.com:443", "FR")


def test_pseudonyms_are_keyed_stable_and_not_the_id() -> None:
    a, b = Pseudonymizer(b"k" * 32), Pseudonymizer(b"j" * 32)
    assert a("viewer", "alice") == a("viewer", "alice")
    assert a("viewer", "alice") != b("viewer", "alice")  # another key: another pseudonym
    assert a("viewer", "alice") != a("address", "alice")  # kinds are separate
    assert "alice" not in a("viewer", "alice") and len(a("viewer", "alice")) == 32


def test_the_key_file_is_made_once_and_private(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    key = ensure_analytics_key(settings)
    assert len(key) >= 32 and ensure_analytics_key(settings) == key
    assert stat.S_IMODE((tmp_path / "analytics-key").stat().st_mode) == 0o600
    assert ensure_analytics_key(Settings(data_dir=tmp_path, analytics_key="set")) == b"set"


def test_in_process_rate_limits_per_key_and_window() -> None:
    now = [0.0]
    rate = InProcessRate(limit=2, window=60, max_keys=2, clock=lambda: now[0])
    assert rate.hit("a") == 0 and rate.hit("a") == 0
    assert rate.hit("a") == pytest.approx(60)
    assert rate.hit("b") == 0  # another key has its own share
    now[0] = 61.0
    assert rate.hit("a") == 0  # the next window
    for k in "cdef":  # memory stays bounded
        rate.hit(k)
    assert len(rate._counts) == 2


def test_redis_rate_is_shared_and_bounded() -> None:
    client = redis.Redis(host="127.0.0.1", port=6379, socket_timeout=1)
    try:
        client.ping()
    except redis.RedisError:
        if os.environ.get("MEDIAPLANE_REQUIRE_SERVICES"):
            raise
        pytest.skip("no Redis on 127.0.0.1:6379")
    prefix = f"test-{uuid.uuid4().hex}"
    one, two = (RedisRate(client, limit=3, prefix=prefix) for _ in range(2))
    assert [one.hit("x"), two.hit("x"), one.hit("x")] == [0, 0, 0]
    assert 1 <= two.hit("x") <= 60  # the fourth hit, from "another process"
    assert one.hit("y") == 0
    gone = redis.Redis(
        host="127.0.0.1", port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0)
    )
    down = RedisRate(gone, 1)
    assert down.hit("x") == 0 and down.hit("x") == 0  # Redis down: the limit is off


def test_junk_spends_its_own_address_share_only(tmp_path: Path) -> None:
    rt = Runtime(Settings(data_dir=tmp_path, beacon_batches_per_address=3))
    intake = beacon_intake(rt)
    for _ in range(3):
        with pytest.raises(InvalidBeacon):
            intake.take(b"{junk", "192.0.2.7", "ua")
    with pytest.raises(RateLimited):  # even a good batch now waits: the address is over
        intake.take(body([ev(1)]), "192.0.2.7", "ua")
    receipt = intake.take(body([ev(1), ev(2)]), "198.51.100.9", "ua")
    assert (receipt.accepted, receipt.rejected) == (2, 0)
    (row,) = intake.lake._events[:1]
    named = dict(zip(EVENT_COLUMNS, row, strict=True))
    assert named["address"] == "198.51.100.0/24"  # truncated; the viewer a keyed hash
    assert named["viewer"] == intake.pseudonym("address", "198.51.100.9\0ua")
