"""/api/v1/live-streams on a real `mediaplane up` (both backends): the contract's shape,
validation, reset-stream-key / disable / enable / delete, playback ids, and what a
publisher's key opens (checked against the server's own database, as the ingest will)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from mediaplane import live
from mediaplane.accounts import Channel, ChannelMember, ChannelRole, create_user
from mediaplane.config import Settings
from mediaplane.runtime import Runtime
from tests.support import Server


@pytest.fixture(scope="module")
def rt(server: Server) -> Iterator[Runtime]:
    """A runtime on the server's database (what the ingest beside it would use)."""
    url = server.env.get("MEDIAPLANE_DATABASE_URL")
    runtime = Runtime(Settings(data_dir=server.data_dir, database_url=url))
    yield runtime
    runtime.db.dispose()


@pytest.fixture(scope="module")
def stranger(server: Server, rt: Runtime) -> str:
    """An API key of a creator who owns another channel."""
    with rt.db.session() as s:
        user = create_user(s, "live-stranger@example.org", "correct horse battery", "creator")
        channel = Channel(name="theirs", created_by=user.id)
        s.add(channel)
        s.flush()
        s.add(ChannelMember(channel_id=channel.id, user_id=user.id, role=ChannelRole.OWNER))
        user_id = user.id
    with server.client() as c:
        r = c.post("/api/v1/api-keys", json={"scope": "write", "user_id": user_id})
    assert r.status_code == 201, r.text
    key: str = r.json()["data"]["key"]
    return key


def test_create_validates_its_body(server: Server) -> None:
    with server.client() as c:
        for body in (
            {"dvr_window_seconds": -1},
            {"reconnect_window_seconds": 1801},
            {"latency_mode": "ultra"},
            {"record": "maybe"},
            {"title": "extra fields are refused"},
        ):
            r = c.post("/api/v1/live-streams", json=body)
            assert r.status_code == 400, (body, r.text)
            assert r.json()["error"]["code"] == "invalid_request"
        r = c.get("/api/v1/live-streams/nope")
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


def test_live_stream_lifecycle(server: Server, rt: Runtime, stranger: str) -> None:
    body = {
        "latency_mode": "low",
        "record": True,
        "dvr_window_seconds": 300,
        "reconnect_window_seconds": 20,
    }
    with server.client() as c:
        r = c.post("/api/v1/live-streams", json=body)
        assert r.status_code == 201, r.text
        data = r.json()["data"]
        assert {k: data[k] for k in body} == body
        assert data["status"] == "idle" and data["active_asset_id"] is None
        assert data["recent_asset_ids"] == [] and data["created_at"]
        sid, key = data["id"], data["stream_key"]
        assert len(key) >= 32 and [p["policy"] for p in data["playback_ids"]] == ["public"]
        assert data["playback"]["hls"].endswith(
            f"/play/{data['playback_ids'][0]['id']}/master.m3u8"
        )

        assert c.get(f"/api/v1/live-streams/{sid}").json()["data"] == data
        listed = c.get("/api/v1/live-streams", params={"limit": 100}).json()
        assert sid in [s["id"] for s in listed["data"]]
        assert listed["pagination"]["total"] >= 1
        other = {"Authorization": f"Bearer {stranger}"}
        assert (
            httpx.get(f"{server.url}/api/v1/live-streams/{sid}", headers=other).status_code == 404
        )
        theirs = httpx.get(f"{server.url}/api/v1/live-streams", headers=other).json()["data"]
        assert sid not in [s["id"] for s in theirs]

        target = live.authenticate_publisher(rt, key)
        assert target == live.PublishTarget(sid, "low", True, 300, 20)
        r = c.post(f"/api/v1/live-streams/{sid}/reset-stream-key")
        assert r.status_code == 200, r.text
        new_key = r.json()["data"]["stream_key"]
        assert new_key != key and live.authenticate_publisher(rt, key) is None
        assert live.authenticate_publisher(rt, new_key) == target

        # live: the API shows the session's recording; disabling ends it
        session = live.publisher_connected(rt, sid, protocol="rtmp")
        shown = c.get(f"/api/v1/live-streams/{sid}").json()["data"]
        assert shown["status"] == "active" and shown["active_asset_id"] == session.asset_id
        asset = c.get(f"/api/v1/assets/{session.asset_id}").json()["data"]
        assert asset["status"] == "preparing" and asset["source_type"] == "live_recording"
        r = c.post(f"/api/v1/live-streams/{sid}/disable")
        assert r.status_code == 200 and r.json()["data"]["status"] == "disabled"
        assert r.json()["data"]["recent_asset_ids"] == [session.asset_id]
        assert live.authenticate_publisher(rt, new_key) is None
        assert not live.is_publish_allowed(rt, sid, session.id)
        r = c.post(f"/api/v1/live-streams/{sid}/enable")
        assert r.status_code == 200 and r.json()["data"]["status"] == "idle"
        assert live.authenticate_publisher(rt, new_key) == target

        r = c.post(f"/api/v1/live-streams/{sid}/playback-ids", json={"policy": "signed"})
        assert r.status_code == 201 and r.json()["data"]["policy"] == "signed"
        signed = r.json()["data"]["id"]
        assert live.resolve_live_playback(rt, signed) is not None
        r = c.delete(f"/api/v1/live-streams/{sid}/playback-ids/{signed}")
        assert r.status_code == 204
        assert live.resolve_live_playback(rt, signed) is None

        assert c.delete(f"/api/v1/live-streams/{sid}").status_code == 204
        assert c.get(f"/api/v1/live-streams/{sid}").status_code == 404
        assert live.authenticate_publisher(rt, new_key) is None
        assert c.get(f"/api/v1/assets/{session.asset_id}").status_code == 200  # kept
