"""Webhooks on one real `mediaplane up` (embedded, webhook endpoints allowed on
127.0.0.1): an upload's events reach a loopback receiver signed (checked with the
receiver's own HMAC code), a failing receiver gets retries until it answers 200, a
replay re-sends the same event id, and the admin page lists deliveries and replays one."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.support import Server, embedded_backend, signed_in, start_server
from tests.webhook_receiver import Received, Receiver, verify

TUS = {"Tus-Resumable": "1.0.0"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(
        tmp_path_factory.mktemp("webhooks"),
        embedded_backend(),
        webhook_allow="127.0.0.1/32",
        webhook_retry_base_seconds="0.2",
        webhook_retry_window_seconds="60",
    )
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def receiver(server: Server) -> Iterator[Receiver]:
    """A receiver; the endpoints a test made are deleted after it (no retries to a closed
    receiver in the next test)."""
    r = Receiver()
    yield r
    with server.client() as c:
        for ep in c.get("/api/v1/webhooks").json()["data"]:
            c.delete(f"/api/v1/webhooks/{ep['id']}")
    r.close()


def _endpoint(server: Server, receiver: Receiver, events: list[str]) -> dict[str, Any]:
    with server.client() as c:
        r = c.post("/api/v1/webhooks", json={"url": receiver.url, "events": events})
    assert r.status_code == 201, r.text
    data: dict[str, Any] = r.json()["data"]
    assert data["secret"].startswith("whsec_")
    return data


def _upload(server: Server) -> str:
    """A tus upload (10 bytes, not media: its asset errors, which is an event too)."""
    with server.client() as c:
        r = c.post("/api/v1/uploads", headers={**TUS, "Upload-Length": "10"})
        assert r.status_code == 201, r.text
        where = r.headers["location"]
        r = c.patch(
            where,
            content=b"0123456789",
            headers={
                **TUS,
                "Upload-Offset": "0",
                "Content-Type": "application/offset+octet-stream",
            },
        )
        assert r.status_code == 204, r.text
    return where.rsplit("/", 1)[-1]


def _signed(secret: str, got: Received) -> bool:
    return verify(secret, got.headers["mediaplane-signature"], got.body)


def _deliveries(server: Server, endpoint_id: str) -> list[dict[str, Any]]:
    with server.client() as c:
        r = c.get(f"/api/v1/webhooks/{endpoint_id}/deliveries")
    assert r.status_code == 200, r.text
    found: list[dict[str, Any]] = r.json()["data"]
    return found


def test_an_uploads_events_arrive_signed(server: Server, receiver: Receiver) -> None:
    ep = _endpoint(server, receiver, ["video.upload.*"])
    upload_id = _upload(server)
    got = receiver.wait_for(2)
    # one object's deliveries go one at a time, in the order of its events
    types = [g.event["type"] for g in got]
    assert types[:2] == ["video.upload.created", "video.upload.asset_created"]
    assert all(g.event["object"]["id"] == upload_id for g in got[:2])
    assert all(_signed(ep["secret"], g) for g in got)
    assert not verify("whsec_wrong", got[0].headers["mediaplane-signature"], got[0].body)
    assert got[0].headers["mediaplane-event-id"] == got[0].event["id"]


def test_a_failing_receiver_gets_retries_then_succeeds(server: Server, receiver: Receiver) -> None:
    answers = iter([(500, {}, b"down"), (503, {}, b"still down")])
    receiver.answer = lambda r: next(answers, (200, {}, b"ok"))
    ep = _endpoint(server, receiver, ["video.upload.created"])
    _upload(server)
    got = receiver.wait_for(3)
    assert len({g.event["id"] for g in got}) == 1  # one event, three attempts
    assert all(_signed(ep["secret"], g) for g in got)
    (log,) = [d for d in _deliveries(server, ep["id"]) if d["status"] != "pending"] or [None]
    assert log is not None, _deliveries(server, ep["id"])
    assert log["status"] == "delivered" and log["attempts"] == 3
    assert log["response_status"] == 200 and log["latency_ms"] is not None
    assert log["request_body"] == got[-1].body.decode()


def test_replay_resends_the_same_event_id(server: Server, receiver: Receiver) -> None:
    ep = _endpoint(server, receiver, ["video.upload.created"])
    _upload(server)
    (first,) = receiver.wait_for(1)
    (delivery,) = _deliveries(server, ep["id"])
    with server.client() as c:
        r = c.post(f"/api/v1/webhooks/{ep['id']}/deliveries/{delivery['id']}/replay")
        assert r.status_code == 201, r.text
        again = receiver.wait_for(2)[1]
        now = datetime.now(UTC)
        span = {
            "since": (now - timedelta(minutes=5)).isoformat(),
            "until": (now + timedelta(minutes=1)).isoformat(),
        }
        r = c.post(f"/api/v1/webhooks/{ep['id']}/replay", json=span)
        assert r.status_code == 201, r.text
        assert len(r.json()["data"]) == 1  # the original only, not its replay
        third = receiver.wait_for(3)[2]
        rotated = c.post(f"/api/v1/webhooks/{ep['id']}/rotate-secret").json()["data"]
        r = c.post(f"/api/v1/webhooks/{ep['id']}/deliveries/{delivery['id']}/replay")
        assert r.status_code == 201, r.text
        fourth = receiver.wait_for(4)[3]
    assert first.event["id"] == again.event["id"] == third.event["id"] == fourth.event["id"]
    assert again.body == first.body
    assert _signed(ep["secret"], again) and _signed(ep["secret"], third)
    # after a rotation both the new and (for 24 h) the old secret verify
    assert _signed(rotated["secret"], fourth) and _signed(ep["secret"], fourth)


def test_the_admin_page_lists_deliveries_and_replays_one(
    server: Server, receiver: Receiver
) -> None:
    ep = _endpoint(server, receiver, ["video.upload.created"])
    _upload(server)
    (first,) = receiver.wait_for(1)
    with signed_in(server, "hooks@example.org") as c:
        page = c.get("/admin/webhooks")
        assert page.status_code == 200, page.text
        assert receiver.url in page.text and "delivered" in page.text
        action = re.search(
            rf'action="(/admin/webhooks/{ep["id"]}/deliveries/\w+/replay)"', page.text
        )
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert action is not None and csrf is not None
        assert c.post(action.group(1), data={"x": "1"}).status_code in (400, 403)  # no CSRF
        r = c.post(action.group(1), data={"csrf_token": csrf.group(1)})
        assert r.status_code == 303, r.text
    again = receiver.wait_for(2)[1]
    assert again.event["id"] == first.event["id"] and _signed(ep["secret"], again)
