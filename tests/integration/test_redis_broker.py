"""A worker fleet on Redis: the same jobs run with `MEDIAPLANE_BROKER_URL=redis://…`."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx

from tests.support import embedded_backend, make_clip, port_open, skip_or_fail, start_server


def test_redis_broker_runs_jobs(tmp_path: Path) -> None:
    if not port_open("127.0.0.1", 6379):
        skip_or_fail("Redis is not listening on 127.0.0.1:6379")
    server = start_server(
        tmp_path / "redis",
        embedded_backend(),
        broker_url="redis://127.0.0.1:6379/0",
        queue_namespace=f"mp_test_{uuid.uuid4().hex[:8]}",
    )
    try:
        clip = make_clip("redis-240p-1s.mp4", seconds=1, size="426x240")
        asset = server.wait(server.upload(clip, title="via redis")["id"])
        assert asset["status"] == "ready", asset
        pid = asset["playback_ids"][0]["id"]
        assert httpx.get(f"{server.url}/play/{pid}/manifest.mpd").status_code == 200
        # `up` names the broker it uses (password masked) in its ready line.
        assert '"broker": "redis://127.0.0.1:6379/0"' in server.log_path.read_text(errors="replace")
    finally:
        server.stop()
