"""QoE beacons and CMCD end to end on the shared server of each backend: batches in (junk,
replays and floods among them), Parquet partitions in the server's object store (local disk,
or S3), and the views API reading them with DuckDB. The server runs with the default
settings: a flush every 5 s, 120 batches a minute per viewer, 64 KiB per batch."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest

from mediaplane.analytics import MAX_EVENTS
from mediaplane.config import Settings
from tests.support import Server, make_clip, until

PER_VIEWER = Settings.model_fields["beacon_batches_per_viewer"].default
MAX_BYTES = Settings.model_fields["beacon_max_bytes"].default


@pytest.fixture(scope="module")
def asset(server: Server) -> dict[str, Any]:
    return server.upload(make_clip("qoe-1s.mp4", seconds=1, size="320x180"), title="qoe")


def batch(view: str, playback_id: str, events: list[Any], **extra: Any) -> dict[str, Any]:
    return {
        "view_id": view,
        "playback_id": playback_id,
        "player": {"name": "hls.js", "version": "1.6.15"},
        "viewer_id": "viewer-" + view,
        "sent_at": int(time.time() * 1000),
        "events": events,
        **extra,
    }


def session_events(now: int) -> list[dict[str, Any]]:
    return [
        {"id": "1", "type": "view_start", "ts": now - 9000},
        {"id": "2", "type": "first_frame", "ts": now - 8000, "startup_ms": 950},
        {"id": "3", "type": "rendition_switch", "ts": now - 7900, "rendition": "360p",
         "bitrate": 800_000, "width": 640, "height": 360},
        {"id": "4", "type": "rebuffer_start", "ts": now - 5000, "position_s": 3.0},
        {"id": "5", "type": "rebuffer_end", "ts": now - 4000, "duration_ms": 1000},
        {"id": "6", "type": "heartbeat", "ts": now - 1000, "position_s": 7.0,
         "rendition": "360p", "bitrate": 800_000, "watched_ms": 4000,
         "cdn": "Edge-1.Example.net:8443"},
        {"id": "7", "type": "error", "ts": now - 900, "code": "fragLoadError", "fatal": False},
        {"id": "8", "type": "end", "ts": now, "position_s": 8.0, "watched_ms": 4000},
        {"id": "9", "type": "heartbeat", "ts": "yesterday"},  # junk: rejected alone
    ]  # fmt: skip


def post(
    server: Server, body: Any, client: httpx.Client | None = None, **kw: Any
) -> httpx.Response:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": "text/plain;charset=UTF-8", **kw.pop("headers", {})}
    send = client.post if client is not None else httpx.post
    return send(server.url + "/api/v1/beacons", content=raw, headers=headers, **kw)


def test_beacons_and_cmcd_land_in_the_lake_and_the_views_api_reads_them(
    server: Server, asset: dict[str, Any], tmp_path: Path
) -> None:
    pid = asset["playback_ids"][0]["id"]
    view = uuid.uuid4().hex
    doc = batch(view, pid, session_events(int(time.time() * 1000)))
    r = post(server, doc, headers={"Origin": "http://127.0.0.1:1"})
    assert r.status_code == 202, r.text
    assert r.headers["access-control-allow-origin"] == "*"
    got = r.json()["data"]
    assert (got["accepted"], got["duplicates"], got["rejected"]) == (8, 0, 1)
    assert got["errors"][0]["index"] == 8 and "ts" in got["errors"][0]["message"]
    # the same batch again (a player retrying): nothing counts twice
    again = post(server, doc).json()["data"]
    assert (again["accepted"], again["duplicates"]) == (0, 8)

    # CMCD as a query argument (hls.js, dash.js) and as headers (shaka's default)
    cmcd = f'bl=3000,br=800,bs,cid="{asset["id"]}",mtp=25000,ot=m,sf=h,sid="{view}",su'
    httpx.get(f"{server.url}/play/{pid}/master.m3u8", params={"CMCD": cmcd})
    httpx.get(
        f"{server.url}/play/{pid}/master.m3u8",
        headers={"CMCD-Session": f'sid="{view}",sf=h', "CMCD-Object": "br=1200,ot=m"},
    )
    httpx.get(f"{server.url}/play/{pid}/master.m3u8", params={"CMCD": 'sid="broken'})

    with server.client() as c:

        def landed() -> dict[str, Any] | None:
            r = c.get("/api/v1/data/views", params={"asset_id": asset["id"]})
            assert r.status_code == 200, r.text
            views = [v for v in r.json()["data"] if v["view_id"] == view]
            return views[0] if views and views[0]["cmcd_requests"] == 2 else None

        v = until("the view in the views API", landed, timeout=20)
        assert v["player"] == "hls.js" and v["player_version"] == "1.6.15"
        assert v["startup_time_ms"] == 950 and v["watch_time_s"] == 4.0
        assert v["rebuffer_count"] == 1 and v["rebuffer_ms"] == 1000
        assert v["rebuffer_ratio"] == pytest.approx(0.2)
        assert v["errors"] == 1 and v["error_codes"] == ["fragLoadError"]
        assert v["average_bitrate"] == 800_000 and v["renditions"] == ["360p"]
        assert v["ended"] is True and v["events"] == 8
        # no trusted country header on this server: unknown; the CDN host as reported
        assert v["country"] is None and v["cdn"] == "edge-1.example.net:8443"
        assert v["cmcd_average_bitrate_kbps"] == 1000 and v["cmcd_buffer_starved"] is True
        assert c.get("/api/v1/data/views", params={"asset_id": "nope"}).status_code == 404
        # a date range: only those days of the lake (the view is today's)
        today = datetime.now(UTC).date()
        first = datetime.fromtimestamp(time.time() - 120, UTC).date()  # a run across midnight
        ranged = {"asset_id": asset["id"], "from": str(first), "to": str(today)}
        r = c.get("/api/v1/data/views", params=ranged)
        assert view in [x["view_id"] for x in r.json()["data"]]
        before = str(first - timedelta(days=1))
        r = c.get("/api/v1/data/views", params=ranged | {"from": before, "to": before})
        assert r.status_code == 200 and view not in [x["view_id"] for x in r.json()["data"]]
        r = c.get("/api/v1/data/views", params=ranged | {"from": str(today), "to": before})
        assert r.status_code == 400
    assert httpx.get(server.url + "/api/v1/data/views?asset_id=" + asset["id"]).status_code == 401

    # the lake: hour partitions of Parquet files in the object store, readable as they are
    store = server.store()
    keys = [o.key for o in store.list("analytics/")]
    assert any(k.startswith("analytics/events/date=") and "/hour=" in k for k in keys), keys
    assert all(k.rsplit("/", 1)[1].startswith("part-") and k.endswith(".parquet") for k in keys)
    local = []
    for i, key in enumerate(k for k in keys if k.startswith("analytics/")):
        store.download(key, tmp_path / f"{i}.parquet")
        local.append(str(tmp_path / f"{i}.parquet"))
    con = duckdb.connect()
    rows = con.execute(
        "SELECT viewer, address FROM read_parquet(?, union_by_name = true) WHERE view_id = ?",
        [[p for p, k in zip(local, keys, strict=True) if "/events/" in k], view],
    ).fetchall()
    # pseudonymised: never the player's viewer id, the address truncated
    assert {a for _, a in rows} == {"127.0.0.0/24"}
    assert all(v and "viewer-" not in v and len(v) == 32 for v, _ in rows)
    invalid = con.execute(
        "SELECT count(*) FROM read_parquet(?, union_by_name = true) WHERE invalid",
        [[p for p, k in zip(local, keys, strict=True) if "/cmcd/" in k]],
    ).fetchone()
    assert invalid == (1,)


def test_junk_and_floods_are_refused_without_blocking_good_beacons(
    server: Server, asset: dict[str, Any]
) -> None:
    pid = asset["playback_ids"][0]["id"]
    assert post(server, b"{not json").json()["error"]["code"] == "invalid_beacon"
    bad = post(server, batch("v1", pid, [], admin=True))
    assert bad.status_code == 400 and "admin" in bad.json()["error"]["message"]
    many = [{"id": "x", "type": "pause", "ts": 1}] * (MAX_EVENTS + 1)
    assert post(server, batch("v1", pid, many)).status_code == 400
    huge = post(server, b"x" * (MAX_BYTES + 1))
    assert huge.status_code == 413

    flood = uuid.uuid4().hex  # one viewer past its share (a window of a minute)...
    codes: list[int] = []
    with httpx.Client() as keepalive:
        while 429 not in codes and len(codes) <= 2 * PER_VIEWER:  # the window may turn once
            event = {"id": str(len(codes)), "type": "pause", "ts": 1}
            codes.append(post(server, batch(flood, pid, [event]), keepalive).status_code)
    assert codes[-1] == 429 and set(codes[:-1]) == {202}, codes
    assert PER_VIEWER <= len(codes) - 1 <= 2 * PER_VIEWER
    limited = post(server, batch(flood, pid, []))
    assert limited.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    # ...while another viewer's beacons are taken
    other = post(server, batch(uuid.uuid4().hex, pid, [{"id": "a", "type": "pause", "ts": 1}]))
    assert other.status_code == 202 and other.json()["data"]["accepted"] == 1
