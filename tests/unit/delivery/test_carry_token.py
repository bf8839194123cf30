"""The carry token of signed playback: what media playlists and segments are checked with
(an HMAC over playback id, expiry and height cap; no database)."""

from __future__ import annotations

import time

import pytest

from mediaplane.delivery._access import (
    CARRY_BUCKET,
    CARRY_SECONDS,
    Carried,
    CarryToken,
    stream_account,
)
from mediaplane.http import ApiError

NOW = 1_900_000_000.0


def _code(carry: CarryToken, value: str | None, pid: str = "pb1", now: float = NOW) -> str:
    with pytest.raises(ApiError) as err:
        carry.verify(value, pid, now)
    assert err.value.status == 403
    return err.value.code


def test_round_trip_with_and_without_a_cap() -> None:
    carry = CarryToken("secret")
    assert carry.check(carry.issue("pb1", None, NOW), "pb1", NOW) == 0
    assert carry.check(carry.issue("pb1", 720, NOW), "pb1", NOW) == 720
    assert carry.verify(carry.issue("pb1", 360, NOW), "pb1", NOW) == 360


def test_expiry_is_bucketed_and_at_least_the_lifetime() -> None:
    carry = CarryToken("secret")
    value = carry.issue("pb1", None, NOW)
    expires = int(value.split(".")[0])
    assert expires % CARRY_BUCKET == 0
    assert NOW + CARRY_SECONDS < expires <= NOW + CARRY_SECONDS + CARRY_BUCKET
    # the same within a bucket: the rendered master stays cacheable
    assert carry.issue("pb1", None, expires - CARRY_SECONDS - CARRY_BUCKET) == value
    assert carry.check(value, "pb1", expires - 1) == 0
    assert carry.check(value, "pb1", expires) is None
    assert _code(carry, value, now=expires + 5) == "token_expired"


def test_another_playback_id_or_secret_is_refused() -> None:
    carry = CarryToken("secret")
    value = carry.issue("pb1", None, NOW)
    assert carry.check(value, "pb2", NOW) is None
    assert _code(carry, value, pid="pb2") == "token_signature"
    assert CarryToken("other secret").check(value, "pb1", NOW) is None


def test_tampering_is_refused() -> None:
    carry = CarryToken("secret")
    value = carry.issue("pb1", 720, NOW)
    expires, height, sig = value.split(".")
    tampered = [
        f"{int(expires) + CARRY_BUCKET}.{height}.{sig}",  # a longer life
        f"{expires}.0.{sig}",  # the cap lifted
        f"{expires}.1080.{sig}",
        f"{expires}.{height}.{sig[:-1]}{'A' if sig[-1] != 'A' else 'B'}",
        f"{expires}.{height}.",
        f"{expires}.{height}",
        f"{expires}.{height}.{sig}.x",
        f"-{expires}.{height}.{sig}",
        f"{expires}.-1.{sig}",
        "x" * 5000,
        "...",
    ]
    for bad in tampered:
        assert carry.check(bad, "pb1", NOW) is None, bad
        assert _code(carry, bad) in {"token_signature", "token_expired"}
    assert _code(carry, None) == "token_missing"
    assert _code(carry, "") == "token_missing"


def test_check_is_cheap() -> None:
    carry = CarryToken("secret")
    value = carry.issue("pb1", None, time.time())
    start = time.perf_counter()
    for _ in range(2000):
        carry.check(value, "pb1", time.time())
    assert time.perf_counter() - start < 2.0  # generous: a sanity bound, not a benchmark


def test_a_counted_stream_carries_its_account_stream_and_limit() -> None:
    carry = CarryToken("secret")
    value = carry.issue("pb1", 720, NOW, user_id="u_1", stream_id="s-9", max_streams=2)
    assert carry.read(value, "pb1", NOW) == Carried(720, "u_1", "s-9", 2)
    assert carry.check(value, "pb1", NOW) == 720
    user_only = carry.issue("pb1", None, NOW, user_id="u_1")
    assert carry.read(user_only, "pb1", NOW) == Carried(0, "u_1", None, 0)
    plain = carry.read(carry.issue("pb1", None, NOW), "pb1", NOW)
    assert plain == Carried(0)
    expires, height, user, stream, limit, sig = value.split(".")
    for bad in (
        f"{expires}.{height}.u_2.{stream}.{limit}.{sig}",  # another account's
        f"{expires}.{height}.{user}.s-8.{limit}.{sig}",  # another stream
        f"{expires}.{height}.{user}.{stream}.9.{sig}",  # a higher limit
        f"{expires}.{height}.{user}.{stream}.{sig}",  # the limit dropped
        f"{expires}.{height}.{sig}",  # the stream dropped: no longer counted
        f"{expires}.{height}.{user}.{stream}.{limit}.{limit}.{sig}",
        f"{expires}.{height}.u!.{stream}.{limit}.{sig}",
        f"{expires}.{height}.{user}.{stream}.99999.{sig}",
    ):
        assert carry.read(bad, "pb1", NOW) is None, bad
        assert _code(carry, bad) == "token_signature"
    assert _code(carry, value, now=int(expires) + 1) == "token_expired"
    with pytest.raises(ValueError, match="ids are"):
        carry.issue("pb1", None, NOW, user_id="alice@example.org")
    with pytest.raises(ValueError, match="user_id is needed"):
        carry.issue("pb1", None, NOW, stream_id="s1")  # a stream needs its account


def test_the_account_of_a_stream() -> None:
    assert stream_account("user1", "viewer-x") == "user1"  # the session's user first
    assert stream_account(None, "viewer-x") == "viewer-x"
    hashed = stream_account(None, "alice@example.org")  # not carry-token safe: a digest
    assert hashed is not None and hashed.startswith("v-") and "alice" not in hashed
    assert hashed == stream_account(None, "alice@example.org")
    assert CarryToken("s").issue("pb1", None, NOW, user_id=hashed)
    assert stream_account(None, None) is None and stream_account(None, "") is None
