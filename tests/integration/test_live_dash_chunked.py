"""Low-latency DASH on a real `mediaplane up`: ffmpeg publishes over RTMP; the MPD announces
the segment being written (availabilityTimeComplete="false") and the origin answers a request
for it at once, sending its parts as the packager writes them (chunked transfer): the first
bytes arrive while the segment file does not exist yet, and the whole body is the completed
segment, byte for byte."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from mediaplane.media import MPD
from tests.integration.test_live_ingest import _publisher, _until
from tests.support import Server

PUBLISH_SECONDS = 12


@pytest.fixture(scope="module")
def on_air(sqlite_server: Server) -> Iterator[dict[str, Any]]:
    with sqlite_server.client() as c:
        r = c.post("/api/v1/live-streams", json={"latency_mode": "low"})
        assert r.status_code == 201, r.text
        live: dict[str, Any] = r.json()["data"]
    pub = _publisher(f"{sqlite_server.rtmp_url}/{live['stream_key']}", PUBLISH_SECONDS)
    try:
        yield live
    finally:
        pub.kill()
        pub.wait(timeout=10)
        with sqlite_server.client() as c:
            c.delete(f"/api/v1/live-streams/{live['id']}")


def test_segment_being_written_is_sent_as_it_is_written(
    sqlite_server: Server, on_air: dict[str, Any]
) -> None:
    play = f"{sqlite_server.url}/play/{on_air['playback_ids'][0]['id']}"
    text = _until(
        "the MPD",
        lambda: (r := httpx.get(f"{play}/manifest.mpd")).status_code == 200 and r.text or None,
    )
    mpd = MPD.parse(text)
    (video,) = [a for a in mpd.periods[0].adaptation_sets if a.content_type == "video"]
    template = video.segment_template
    assert template is not None and template.media is not None
    assert dict(template.extra)["availabilityTimeComplete"] == "false"
    assert float(dict(template.extra)["availabilityTimeOffset"]) > 0
    assert any(n.tag.endswith("ServiceDescription") for n in mpd.nodes)
    session_id, rung, _ = template.media.split("/")
    folder = sqlite_server.data_dir / "live" / on_air["id"] / session_id / rung
    # The segment after the newest one with parts: not begun, or just begun.
    msn = json.loads((folder / "state.json").read_bytes())["msn"] + 1
    url = f"{play}/{session_id}/{rung}/{msn}.m4s"
    body = b""
    complete_at_first_bytes = None
    with httpx.stream("GET", url, timeout=30) as r:
        assert r.status_code == 200, r.read()
        assert "content-length" not in r.headers  # chunked: sent before its length is known
        for chunk in r.iter_raw():
            if complete_at_first_bytes is None:
                complete_at_first_bytes = (folder / f"{msn}.m4s").exists()
            body += chunk
    assert complete_at_first_bytes is False  # the first bytes came before the segment was done
    whole = (folder / f"{msn}.m4s").read_bytes()
    assert body == whole
    again = httpx.get(url, timeout=30)  # now complete: the file, with its length
    assert again.status_code == 200 and again.content == whole
    assert again.headers["content-length"] == str(len(whole))
    # A segment far ahead of the live edge is not held.
    assert httpx.get(f"{play}/{session_id}/{rung}/{msn + 5}.m4s").status_code == 404
