"""Webhooks in process: signing (checked by the receiver's own HMAC code), matching, the
backoff schedule, what each answer does to a delivery (2xx, 410, 5xx, a timeout, a huge
body, a redirect), the URL guard, the relay's fan-out and the dispatcher's claims."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import random
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from mediaplane.db import utcnow
from mediaplane.events import EventType, InProcessBus, Relay, emit
from mediaplane.intake import address_allowed
from mediaplane.runtime import Runtime
from mediaplane.webhooks import (
    DeliveryStatus,
    Dispatcher,
    EndpointChanges,
    InvalidWebhook,
    Outcome,
    RetryPolicy,
    SendLimits,
    WebhookDelivery,
    WebhookEndpoint,
    create_endpoint,
    fan_out,
    next_attempt,
    post,
    prune_deliveries,
    record,
    replay_delivery,
    replay_range,
    retry_delay,
    rotate_secret,
    signature_header,
    update_endpoint,
)
from mediaplane.webhooks._service import claim, signing_secrets
from tests.support import migrated_runtime
from tests.webhook_receiver import Receiver, verify

LOOPBACK = ("127.0.0.1/32",)
FAST = SendLimits(LOOPBACK, connect_timeout=1.0, timeout=0.5)


@pytest.fixture
def rt(tmp_path: Path) -> Iterator[Runtime]:
    with migrated_runtime("sqlite", tmp_path, webhook_allow="127.0.0.1/32") as runtime:
        yield runtime


@pytest.fixture(params=["sqlite", "postgres"])
def any_rt(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Runtime]:
    """``rt`` on SQLite and on PostgreSQL: for the fan-out, the claims and replays."""
    with migrated_runtime(request.param, tmp_path, webhook_allow="127.0.0.1/32") as runtime:
        yield runtime


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


# -- signing --------------------------------------------------------------------------


def test_the_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    body = b'{"type":"video.asset.ready"}'
    header = signature_header(["whsec_a"], 1764590400, body)
    expected = hmac.new(b"whsec_a", b"1764590400." + body, hashlib.sha256).hexdigest()
    assert header == f"t=1764590400,v1={expected}"
    assert verify("whsec_a", header, body)
    assert not verify("whsec_b", header, body)
    assert not verify("whsec_a", header, body + b" ")


def test_a_rotated_secret_keeps_verifying_for_a_day(rt: Runtime) -> None:
    now = datetime(2026, 12, 1, 12, tzinfo=UTC)
    with rt.db.session() as s:
        ep = create_endpoint(s, "http://127.0.0.1:9/hook", ["*"], LOOPBACK)
        old = ep.secret
        ep = rotate_secret(s, ep.id, now)
        assert ep.secret != old
        header = signature_header(signing_secrets(ep, now), 1, b"{}")
        assert header.count("v1=") == 2
        assert verify(old, header, b"{}") and verify(ep.secret, header, b"{}")
        later = now + timedelta(hours=24, seconds=1)
        header = signature_header(signing_secrets(ep, later), 1, b"{}")
        assert header.count("v1=") == 1 and not verify(old, header, b"{}")


# -- matching and fan-out --------------------------------------------------------------


def _endpoint(rt: Runtime, url: str, events: list[str]) -> str:
    with rt.db.session() as s:
        return create_endpoint(s, url, events, LOOPBACK).id


def _deliveries(rt: Runtime) -> list[WebhookDelivery]:
    with rt.db.session() as s:
        rows = list(s.scalars(select(WebhookDelivery).order_by(WebhookDelivery.created_at)))
        s.expunge_all()
        return rows


def test_the_relay_fans_each_event_out_once_to_matching_enabled_endpoints(any_rt: Runtime) -> None:
    rt = any_rt
    assets = _endpoint(rt, "http://127.0.0.1:9/a", ["video.asset.*"])
    ready = _endpoint(rt, "http://127.0.0.1:9/r", ["video.asset.ready", "video.upload.created"])
    off = _endpoint(rt, "http://127.0.0.1:9/off", ["*"])
    with rt.db.session() as s:
        update_endpoint(s, off, EndpointChanges(enabled=False), LOOPBACK)
        emit(s, EventType.ASSET_READY, "asset", "a1", {"id": "a1"})
        emit(s, EventType.ASSET_MODERATION_APPROVED, "asset", "a1", {"id": "a1"})
        emit(s, EventType.UPLOAD_CANCELLED, "upload", "u1", {"id": "u1"})
    relay = Relay(rt.db, InProcessBus(rt.db), on_published=fan_out)
    assert relay.drain() == 3
    assert relay.drain() == 0
    got = {(d.endpoint_id, d.event_type) for d in _deliveries(rt)}
    assert got == {
        (assets, "video.asset.ready"),
        (assets, "video.asset.moderation.approved"),  # "*" spans dots, as fnmatch does
        (ready, "video.asset.ready"),
    }
    relay.release()


def test_patterns_and_urls_are_checked(rt: Runtime) -> None:
    with rt.db.session() as s:
        for events in ([], ["video asset"], ["x" * 65]):
            with pytest.raises(InvalidWebhook):
                create_endpoint(s, "http://127.0.0.1:9/", events, LOOPBACK)
        for url in ("http://127.0.0.1:9/", "http://10.0.0.1/", "http://[::1]/", "ftp://x/"):
            with pytest.raises(InvalidWebhook) as err:
                create_endpoint(s, url, ["*"], ())
            assert err.value.code == "url_refused"


@pytest.mark.parametrize(
    ("addr", "allowed"),
    [
        ("93.184.216.34", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("169.254.169.254", False),
        ("::ffff:127.0.0.1", False),
        ("fe80::1", False),
    ],
)
def test_the_url_guard_on_parsed_addresses(addr: str, allowed: bool) -> None:
    assert address_allowed(ipaddress.ip_address(addr)) is allowed


# -- the backoff schedule --------------------------------------------------------------


def test_backoff_doubles_with_jitter_up_to_the_cap() -> None:
    rng = random.Random(7)
    for attempts, ceiling in ((1, 10), (2, 20), (3, 40), (10, 3600), (30, 3600)):
        for _ in range(20):
            d = retry_delay(attempts, 10.0, rng)
            assert ceiling * 0.5 <= d < ceiling
    created = datetime(2026, 12, 1, tzinfo=UTC)
    at = next_attempt(1, created, created, base=10, window=86400, rng=rng)
    assert at is not None and created + timedelta(seconds=5) <= at < created + timedelta(seconds=10)
    late = created + timedelta(hours=23, minutes=59)
    assert next_attempt(12, created, late, base=10, window=86400, rng=rng) is None


def test_over_24_hours_a_delivery_gets_a_bounded_number_of_attempts() -> None:
    created = now = datetime(2026, 12, 1, tzinfo=UTC)
    rng = random.Random(1)
    attempts = 0
    while (
        at := next_attempt(attempts + 1, created, now, base=10, window=86400, rng=rng)
    ) is not None:
        attempts += 1
        now = at
    assert 20 <= attempts <= 60
    assert now <= created + timedelta(days=1)


# -- answers ---------------------------------------------------------------------------


def _attempt(rt: Runtime, receiver: Receiver, limits: SendLimits = FAST) -> WebhookDelivery:
    """Create a delivery to ``receiver``, send it once and record the outcome."""
    with rt.db.session() as s:
        ep = create_endpoint(s, receiver.url, ["*"], LOOPBACK)
        d = WebhookDelivery(
            endpoint_id=ep.id,
            event_id="e1",
            event_type="video.asset.ready",
            object_id="a1",
            seq=1,
            body='{"a":1}',
        )
        s.add(d)
        s.flush()
        outcome = post(ep.url, d.body.encode(), {"Content-Type": "application/json"}, limits)
        record(d, ep, outcome, utcnow(), RetryPolicy(base=10, window=3600))
        s.flush()
        s.expunge_all()
        return d


def _endpoint_of(rt: Runtime, d: WebhookDelivery) -> WebhookEndpoint:
    with rt.db.session() as s:
        ep = s.get(WebhookEndpoint, d.endpoint_id)
        assert ep is not None
        s.expunge(ep)
        return ep


def test_2xx_delivers(rt: Runtime, receiver: Receiver) -> None:
    d = _attempt(rt, receiver)
    assert d.status is DeliveryStatus.DELIVERED and d.response_status == 200
    assert d.attempts == 1 and d.latency_ms is not None and d.next_attempt_at is None


def test_410_disables_the_endpoint(rt: Runtime, receiver: Receiver) -> None:
    receiver.answer = lambda r: (410, {}, b"gone")
    d = _attempt(rt, receiver)
    assert d.status is DeliveryStatus.FAILED and d.response_status == 410
    ep = _endpoint_of(rt, d)
    assert not ep.enabled and ep.disabled_reason == "gone"


def test_5xx_is_retried_later(rt: Runtime, receiver: Receiver) -> None:
    receiver.answer = lambda r: (503, {}, b"busy")
    before = utcnow()
    d = _attempt(rt, receiver)
    assert d.status is DeliveryStatus.PENDING and d.response_status == 503
    assert d.next_attempt_at is not None and d.next_attempt_at > before
    assert _endpoint_of(rt, d).enabled


def test_a_hanging_endpoint_times_out_and_is_retried(rt: Runtime, receiver: Receiver) -> None:
    receiver.answer = lambda r: (0, {}, b"")
    d = _attempt(rt, receiver)
    assert d.status is DeliveryStatus.PENDING and d.error == "timeout"
    assert d.latency_ms is not None and d.latency_ms < 2000


def test_a_huge_body_is_read_only_up_to_the_limit(rt: Runtime, receiver: Receiver) -> None:
    receiver.answer = lambda r: (200, {}, b"x" * (32 * 1024 * 1024))
    d = _attempt(rt, receiver, SendLimits(LOOPBACK, 1.0, 5.0))
    assert d.status is DeliveryStatus.DELIVERED
    assert d.response_body is not None and len(d.response_body) == 4096


def test_a_redirect_is_not_followed(rt: Runtime, receiver: Receiver) -> None:
    target = Receiver()  # where the redirect points: never reached
    try:
        receiver.answer = lambda r: (302, {"Location": target.url}, b"")
        d = _attempt(rt, receiver)
        assert d.status is DeliveryStatus.FAILED and d.response_status == 302
        assert d.error == "redirect not followed"
        assert target.received == []
    finally:
        target.close()


def test_a_private_address_is_refused_when_sending() -> None:
    outcome = post("http://127.0.0.1:9/hook", b"{}", {}, SendLimits((), 1.0, 1.0))
    assert outcome.status is None and outcome.error is not None
    assert outcome.error.startswith("refused") and outcome.kind == "fail"


def test_a_connection_error_is_retried() -> None:
    assert Outcome(None, None, "connection error: ConnectError", 1).kind == "retry"


# -- the dispatcher --------------------------------------------------------------------


def test_the_dispatcher_sends_signed_and_a_claim_is_taken_once(
    any_rt: Runtime, receiver: Receiver
) -> None:
    rt = any_rt
    ep_id = _endpoint(rt, receiver.url, ["video.asset.*"])
    with rt.db.session() as s:
        emit(s, EventType.ASSET_READY, "asset", "a1", {"id": "a1"})
        secret = s.get(WebhookEndpoint, ep_id).secret  # type: ignore[union-attr]
    relay = Relay(rt.db, InProcessBus(rt.db), on_published=fan_out)
    relay.drain()
    relay.release()
    (delivery,) = _deliveries(rt)
    with rt.db.session() as s:  # another process holds it: this one leaves it alone
        assert claim(s, delivery.id, utcnow(), timedelta(seconds=30))
    with rt.db.session() as s:
        assert not claim(s, delivery.id, utcnow(), timedelta(seconds=30))
    dispatcher = Dispatcher(rt.db, FAST, RetryPolicy(), clock=utcnow)
    try:
        assert dispatcher.tick() == 0
        later = Dispatcher(
            rt.db, FAST, RetryPolicy(), clock=lambda: utcnow() + timedelta(seconds=31)
        )
        assert later.tick() == 1
        later.wait(10)
        later.close()
    finally:
        dispatcher.close()
    (got,) = receiver.wait_for(1)
    assert verify(secret, got.headers["mediaplane-signature"], got.body)
    assert got.event["type"] == "video.asset.ready" and got.event["object"]["id"] == "a1"
    (done,) = _deliveries(rt)
    assert done.status is DeliveryStatus.DELIVERED


def test_two_senders_claiming_at_once_on_postgresql_get_it_once(tmp_path: Path) -> None:
    """The second UPDATE waits for the first's row lock, then sees the claim: False."""
    with migrated_runtime("postgres", tmp_path, webhook_allow="127.0.0.1/32") as rt:
        _endpoint(rt, "http://127.0.0.1:9/hook", ["*"])
        with rt.db.session() as s:
            emit(s, EventType.ASSET_READY, "asset", "a1", {"id": "a1"})
        relay = Relay(rt.db, InProcessBus(rt.db), on_published=fan_out)
        relay.drain()
        relay.release()
        (delivery,) = _deliveries(rt)
        now, hold, second = utcnow(), timedelta(seconds=30), []

        def other_sender() -> None:
            with rt.db.session() as s:
                second.append(claim(s, delivery.id, now, hold))

        with rt.db.session() as s:
            assert claim(s, delivery.id, now, hold)  # uncommitted: the row stays locked
            other = threading.Thread(target=other_sender)
            other.start()
            other.join(0.3)  # lets it reach the lock; it returns either way
        other.join(10)
        assert second == [False]


def test_replays_copy_the_body_and_event_id(any_rt: Runtime) -> None:
    rt = any_rt
    ep_id = _endpoint(rt, "http://127.0.0.1:9/hook", ["*"])
    with rt.db.session() as s:
        emit(s, EventType.ASSET_READY, "asset", "a1", {"id": "a1"})
    relay = Relay(rt.db, InProcessBus(rt.db), on_published=fan_out)
    relay.drain()
    relay.release()
    (original,) = _deliveries(rt)
    with rt.db.session() as s:
        one = replay_delivery(s, ep_id, original.id)
        assert (one.event_id, one.body, one.replay_of) == (
            original.event_id,
            original.body,
            original.id,
        )
        many = replay_range(
            s, ep_id, original.created_at - timedelta(seconds=1), utcnow() + timedelta(seconds=1)
        )
        assert [d.event_id for d in many] == [original.event_id]  # replays are not replayed
        with pytest.raises(InvalidWebhook):
            replay_range(s, ep_id, utcnow(), utcnow() - timedelta(seconds=1))


def test_a_hanging_endpoint_holds_only_its_own_slots(rt: Runtime) -> None:
    hanging, healthy = Receiver(), Receiver()
    hanging.answer = lambda r: (0, {}, b"")
    slow = _endpoint(rt, hanging.url, ["video.asset.*"])
    fast = _endpoint(rt, healthy.url, ["video.upload.*"])
    with rt.db.session() as s:
        for i in range(5):  # queued first: they come due before the healthy one's
            emit(s, EventType.ASSET_READY, "asset", f"a{i}", {"id": f"a{i}"})
        emit(s, EventType.UPLOAD_CREATED, "upload", "u1", {"id": "u1"})
    relay = Relay(rt.db, InProcessBus(rt.db), on_published=fan_out)
    relay.drain()
    relay.release()
    limits = SendLimits(LOOPBACK, 1.0, 5.0)
    dispatcher = Dispatcher(rt.db, limits, RetryPolicy(), concurrency=4, per_endpoint=2)
    try:
        assert dispatcher.tick() == 3  # two to the hanging endpoint, then the healthy one
        (got,) = healthy.wait_for(1)
        assert got.event["object"]["id"] == "u1"
        hanging.wait_for(2)
        assert dispatcher.tick() == 0  # the hanging endpoint is at its limit
        assert len(hanging.received) == 2
    finally:
        hanging.release.set()
        dispatcher.wait(10)
        dispatcher.close()
        hanging.close()
        healthy.close()
    by_endpoint = {d.endpoint_id for d in _deliveries(rt) if d.attempts}
    assert by_endpoint == {slow, fast}


def test_the_log_is_pruned_but_never_a_pending_delivery(rt: Runtime) -> None:
    ep_id = _endpoint(rt, "http://127.0.0.1:9/hook", ["*"])
    old = utcnow() - timedelta(days=8)
    with rt.db.session() as s:
        for i, status in enumerate(DeliveryStatus):
            s.add(
                WebhookDelivery(
                    endpoint_id=ep_id,
                    event_id=f"e{i}",
                    event_type="video.asset.ready",
                    object_id=f"a{i}",
                    seq=i,
                    body="{}",
                    status=status,
                    created_at=old,
                )
            )
    with rt.db.session() as s:
        assert prune_deliveries(s, 7 * 86400) == 2
    assert [d.status for d in _deliveries(rt)] == [DeliveryStatus.PENDING]
