"""Real-time viewers end to end on the shared server: beacons in, and at once (no lake
flush) ``GET /api/v1/data/realtime`` and the panels of the watch page and the studio live
page count the views watching now, with their live QoE."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from mediaplane.accounts import SESSION_COOKIE, create_session, create_user
from mediaplane.config import Settings
from mediaplane.db import Database
from tests.support import Server, live_stream, make_clip


@pytest.fixture(scope="module")
def asset(server: Server) -> dict[str, Any]:
    return server.upload(make_clip("realtime-1s.mp4", seconds=1, size="320x180"), title="rt")


@pytest.fixture(scope="module")
def stream(server: Server) -> Iterator[dict[str, Any]]:
    yield from live_stream(server)


@pytest.fixture(scope="module")
def admin_cookie(server: Server) -> str:
    db = Database(server.env.get("MEDIAPLANE_DATABASE_URL") or _sqlite(server))
    try:
        with db.session() as s:
            email = f"rt-{uuid.uuid4().hex[:8]}@example.org"
            user = create_user(s, email, "correct horse battery", "admin", email_verified=True)
            return create_session(s, user, "pytest", 3600).token
    finally:
        db.dispose()


def _sqlite(server: Server) -> str:
    return Settings(data_dir=server.data_dir).effective_database_url


def send(server: Server, pid: str, view: str, events: list[dict[str, Any]]) -> None:
    now = int(time.time() * 1000)
    body = {
        "view_id": view,
        "playback_id": pid,
        "player": {"name": "shaka-player"},
        "viewer_id": "viewer-" + view,
        "sent_at": now,
        "events": [{**e, "ts": now + e["ts"]} for e in events],
    }
    r = httpx.post(server.url + "/api/v1/beacons", content=json.dumps(body).encode())
    assert r.status_code == 202, r.text


def test_concurrent_viewers_and_live_qoe_of_an_asset(
    server: Server, asset: dict[str, Any], admin_cookie: str
) -> None:
    pid = asset["playback_ids"][0]["id"]
    one, two, gone = (uuid.uuid4().hex for _ in range(3))
    send(server, pid, one, [
        {"id": "1", "type": "view_start", "ts": -3000},
        {"id": "2", "type": "first_frame", "ts": -2500, "startup_ms": 500},
        {"id": "3", "type": "rebuffer_start", "ts": -100},
        {"id": "4", "type": "heartbeat", "ts": 0, "bitrate": 600_000, "watched_ms": 2400},
    ])  # fmt: skip
    send(server, pid, two, [
        {"id": "1", "type": "heartbeat", "ts": 0, "bitrate": 1_000_000, "watched_ms": 9000},
        {"id": "2", "type": "error", "ts": 0, "code": "3016", "fatal": False},
    ])  # fmt: skip
    send(server, pid, gone, [
        {"id": "1", "type": "view_start", "ts": -2000},
        {"id": "2", "type": "end", "ts": 0, "watched_ms": 1500},
    ])  # fmt: skip
    with server.client() as c:
        r = c.get("/api/v1/data/realtime", params={"asset_id": asset["id"]})
        assert r.status_code == 200, r.text
        got = r.json()["data"]
        assert got["asset_id"] == asset["id"] and got["window_s"] == 15.0
        assert got["viewers"] == 2 and got["rebuffering_viewers"] == 1
        assert got["average_bitrate"] == 800_000 and got["errors_last_minute"] == 1
        assert c.get("/api/v1/data/realtime").status_code == 400
        both = {"asset_id": asset["id"], "live_stream_id": "x"}
        assert c.get("/api/v1/data/realtime", params=both).status_code == 400
        assert c.get("/api/v1/data/realtime", params={"asset_id": "nope"}).status_code == 404
    anon = httpx.get(server.url + "/api/v1/data/realtime", params={"asset_id": asset["id"]})
    assert anon.status_code == 401

    # the watch page: the panel for whoever may read the asset, polling its partial
    cookies = {SESSION_COOKIE: admin_cookie}
    page = httpx.get(f"{server.url}/watch/{pid}", cookies=cookies).text
    assert 'id="realtime"' in page and f"/_partials/realtime?asset_id={asset['id']}" in page
    part = httpx.get(
        f"{server.url}/_partials/realtime", params={"asset_id": asset["id"]}, cookies=cookies
    )
    assert part.status_code == 200 and part.headers["cache-control"] == "no-store"
    assert '<span id="rt-viewers">2</span>' in part.text
    assert '<td id="rt-bitrate">800 kbit/s</td>' in part.text
    # an anonymous viewer's watch page has no panel, nor the partial
    assert 'id="realtime"' not in httpx.get(f"{server.url}/watch/{pid}").text
    refused = httpx.get(f"{server.url}/_partials/realtime", params={"asset_id": asset["id"]})
    assert refused.status_code == 401


def test_concurrent_viewers_of_a_live_stream(
    server: Server, stream: dict[str, Any], admin_cookie: str
) -> None:
    pid = stream["playback_ids"][0]["id"]
    send(server, pid, uuid.uuid4().hex, [{"id": "1", "type": "view_start", "ts": 0}])
    with server.client() as c:
        r = c.get("/api/v1/data/realtime", params={"live_stream_id": stream["id"]})
        assert r.status_code == 200, r.text
        assert r.json()["data"]["viewers"] == 1
        assert r.json()["data"]["live_stream_id"] == stream["id"]
        assert c.get("/api/v1/data/realtime", params={"live_stream_id": "nope"}).status_code == 404
    page = httpx.get(
        f"{server.url}/studio/live/{stream['id']}", cookies={SESSION_COOKIE: admin_cookie}
    )
    assert page.status_code == 200, page.text
    assert '<span id="rt-viewers">1</span>' in page.text
