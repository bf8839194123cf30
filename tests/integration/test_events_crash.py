"""Events survive a SIGKILL between commit and publish: `mediaplane up` (embedded defaults on
SQLite, and on PostgreSQL; events on the real Redis, the relay off) takes a tus upload and
processes it (an upload's, an asset's and each of its tracks' events), is killed;
restarted with the relay on, it publishes what waited in the outbox, and
`mediaplane events tail --group … --json` sees every event, by id, none lost."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from sqlalchemy import select

from mediaplane.db import Database
from mediaplane.events import OutboxRow
from tests.support import (
    embedded_backend,
    make_clip,
    port_open,
    postgres_database,
    skip_or_fail,
    start_server,
)

URL = "redis://127.0.0.1:6379/0"
TUS = {"Tus-Resumable": "1.0.0"}


def _upload(server: Any, data: bytes) -> str:
    """A tus upload of ``data`` in one PATCH; the upload's id."""
    with server.client() as c:
        r = c.post("/api/v1/uploads", headers={**TUS, "Upload-Length": str(len(data))})
        assert r.status_code == 201, r.text
        where = r.headers["location"]
        r = c.patch(
            where,
            content=data,
            headers={
                **TUS,
                "Upload-Offset": "0",
                "Content-Type": "application/offset+octet-stream",
            },
        )
        assert r.status_code == 204, r.text
        r = c.get(where, headers={"Accept": "application/json"})
    up: dict[str, Any] = r.json()["data"]
    assert up["status"] == "asset_created", up
    return str(up["id"])


def _outbox(url: str) -> list[OutboxRow]:
    db = Database(url)
    try:
        with db.session() as s:
            return list(s.scalars(select(OutboxRow).order_by(OutboxRow.id)))
    finally:
        db.dispose()


def _lines(proc: subprocess.Popen[str], out: queue.Queue[str]) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        out.put(line)


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_sigkill_between_commit_and_publish_loses_no_event(tmp_path: Path, database: str) -> None:
    if not port_open("127.0.0.1", 6379):
        skip_or_fail("Redis is not listening on 127.0.0.1:6379")
    ns = f"mp_test_{uuid.uuid4().hex[:10]}"
    settings = {"events_url": URL, "queue_namespace": ns}
    data_dir = tmp_path / "data"
    db_url, drop = f"sqlite:///{data_dir / 'mediaplane.sqlite'}", None
    if database == "postgres":
        db_url, drop = postgres_database()
        settings["database_url"] = db_url
    clip = make_clip("events-2s.mp4", seconds=2, size="426x240").read_bytes()
    client = redis.Redis.from_url(URL)
    tail: subprocess.Popen[str] | None = None
    server = start_server(data_dir, embedded_backend(), events_relay="false", **settings)
    try:
        upload_id = _upload(server, clip)
        asset_id = next(r.object_id for r in _outbox(db_url) if r.object_type == "asset")
        server.wait(asset_id)  # processed: video.asset.ready and every track's are committed
        os.killpg(server.proc.pid, signal.SIGKILL)
        server.proc.wait(timeout=10)
        server.stop()

        waiting = _outbox(db_url)
        tracks = [r for r in waiting if r.type == "video.asset.track.ready"]
        assert [(r.type, r.object_id) for r in waiting if r not in tracks] == [
            ("video.upload.created", upload_id),
            ("video.asset.created", asset_id),
            ("video.upload.asset_created", upload_id),
            ("video.asset.ready", asset_id),
        ]
        # one per track, about the asset, after it turned ready (the audio track joins
        # with the ladder, after the muxed preview made the asset ready)
        assert sorted(r.data["type"] for r in tracks) == ["audio", "video"]
        assert all(r.object_id == asset_id and r.data["asset_id"] == asset_id for r in tracks)
        assert min(waiting.index(r) for r in tracks) == 4
        assert all(r.published_at is None for r in waiting)
        assert client.xlen(f"{ns}:events") == 0  # committed, never published

        server = start_server(data_dir, embedded_backend(), **settings)
        tail = subprocess.Popen(
            [sys.executable, "-m", "mediaplane", "events", "tail"]
            + ["--group", "crash-test", "--from-start", "--json"],
            env={**server.env},
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=_lines, args=(tail, lines), daemon=True).start()
        want = {r.event_id for r in waiting}
        seen: list[dict[str, Any]] = []
        deadline = time.monotonic() + 60
        while not want <= {e["id"] for e in seen}:
            left = deadline - time.monotonic()
            assert left > 0, f"events seen: {seen}\n{server.log()}"
            with contextlib.suppress(queue.Empty):
                seen.append(json.loads(lines.get(timeout=left)))
        known = {r.event_id: r for r in _outbox(db_url)}
        assert all(e["id"] in known for e in seen)  # duplicates only with the same id
        first = [e["id"] for e in seen if e["id"] in want]
        assert list(dict.fromkeys(first)) == [r.event_id for r in waiting]  # in order
        ready = next(e for e in seen if e["type"] == "video.asset.ready")
        assert ready["object"] == {"type": "asset", "id": asset_id}
        assert ready["data"]["status"] == "ready" and ready["data"]["id"] == asset_id
        audio = next(
            e
            for e in seen
            if e["type"] == "video.asset.track.ready" and e["data"]["type"] == "audio"
        )
        assert audio["object"] == {"type": "asset", "id": asset_id}
        with server.client() as c:
            api_tracks = c.get(f"/api/v1/assets/{asset_id}").json()["data"]["tracks"]
        assert {**api_tracks[-1], "asset_id": asset_id} == audio["data"]  # as the API has it
        ready_doc = httpx.get(server.url + "/readyz", timeout=10).json()
        assert ready_doc["events"]["backlog"] == 0, ready_doc
        assert ready_doc["events"]["bus"].startswith("redis streams"), ready_doc
        metrics = httpx.get(server.url + "/metrics", timeout=10).text
        assert "mediaplane_events_backlog 0.0" in metrics
    finally:
        if tail is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(tail.pid, signal.SIGKILL)
            tail.wait(timeout=10)
        server.stop()
        client.delete(f"{ns}:events")
        client.close()
        if drop is not None:
            drop()
