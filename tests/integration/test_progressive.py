"""Ready to play in seconds: the lowest rung plays (a growing HLS EVENT playlist) while the
rest of the ladder encodes; the master playlist then switches to the full ladder."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import m3u8
import pytest

from tests.support import Backend, Server, make_clip, probe_decodes, start_server


@pytest.fixture(scope="module")
def slow_server(backend: Backend, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    # The real default preset: the full ladder takes long enough to watch the preview phase.
    s = start_server(tmp_path_factory.mktemp("progressive"), backend, x264_preset="veryfast")
    yield s
    s.stop()


def test_playable_before_the_ladder_is_done(slow_server: Server, tmp_path: Path) -> None:
    server = slow_server
    clip = make_clip("progressive-1080p-8s.mp4", seconds=8, size="1920x1080")
    created = server.upload(clip, title="progressive")
    asset = server.wait(created["id"], playable=True)
    assert asset["status"] == "ready"
    assert asset["progress"] < 100, "the whole ladder finished before the first rendition"
    states = {r["id"]: r["status"] for r in asset["renditions"]}
    assert states["preview"] == "ready"
    assert {"v1080", "v720", "v480", "v360"} <= {k for k, v in states.items() if v == "preparing"}

    base = f"{server.url}/play/{asset['playback_ids'][0]['id']}"
    master_text = httpx.get(base + "/master.m3u8").text
    assert "#EXT-X-START:TIME-OFFSET=0" in master_text
    master = m3u8.loads(master_text)
    assert [p.uri for p in master.playlists] == ["preview/media.m3u8"]
    codecs = master.playlists[0].stream_info.codecs
    assert codecs.startswith("avc1.") and codecs.endswith(",mp4a.40.2")
    r = httpx.get(base + "/preview/media.m3u8")
    assert r.headers["cache-control"] == "public, max-age=1"
    growing = m3u8.loads(r.text)
    assert growing.segments, "ready means at least one segment is there"
    if not growing.is_endlist:
        assert growing.playlist_type == "event"
    first = (
        httpx.get(base + "/preview/init.mp4").content
        + httpx.get(base + "/preview/" + growing.segments[0].uri).content
    )
    kinds = {s["codec_type"] for s in probe_decodes(first)["streams"]}
    assert kinds == {"video", "audio"}  # muxed: one rendition plays with sound
    dash = httpx.get(base + "/manifest.mpd")
    assert dash.status_code == 404
    assert dash.json()["error"]["code"] == "asset_not_ready"

    done = server.wait(asset["id"], timeout=300)
    assert done["progress"] == 100
    assert all(r["status"] == "ready" for r in done["renditions"])
    master = m3u8.loads(httpx.get(base + "/master.m3u8").text)
    assert len(master.playlists) == 4
    assert "preview/media.m3u8" not in [p.uri for p in master.playlists]
    # A player that started on the preview keeps a complete VOD rendition to finish with.
    final = m3u8.loads(httpx.get(base + "/preview/media.m3u8").text)
    assert final.is_endlist and final.playlist_type == "vod"
    assert sum(s.duration for s in final.segments) == pytest.approx(8.0, abs=0.1)
    assert httpx.get(base + "/manifest.mpd").status_code == 200


def test_invalid_media_stops_both_passes(slow_server: Server, tmp_path: Path) -> None:
    whole = make_clip(
        "trunc-faststart-8s.mp4", seconds=8, size="1280x720", extra=["-movflags", "+faststart"]
    ).read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole[: len(whole) // 3])
    started = time.monotonic()
    asset = slow_server.wait(slow_server.upload(cut)["id"], timeout=120)
    assert asset["status"] == "errored"
    assert "truncated" in " ".join(asset["errors"]["messages"])
    assert time.monotonic() - started < 120
