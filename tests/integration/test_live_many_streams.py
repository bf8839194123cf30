"""Several live streams on one real `mediaplane up` (SQLite, embedded defaults), as streams
come and go: three publish at once, then are deleted (one while its publisher is still on,
two after theirs left, inside the default 60 s reconnect window); each session goes idle
within a poll of the delete (``live.idle``) and its packager processes are gone, with no
slate left encoding for a stream that no longer exists. Then nine publishers at once (more
than the eight that got no playlist at all from bench/live_latency.py --publishers 8 while
the earlier rounds' deleted streams still ran their slates) each get a playlist with a
complete segment. The publishers copy (``-c copy``) a tiny generated clip, as the bench
does at 720p: the server packages, never encodes."""

from __future__ import annotations

import contextlib
import json
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from mediaplane.clips import AAC, H264, Clip, picture, sine
from mediaplane.media import MasterPlaylist, MediaPlaylist
from tests.support import MEDIA_CACHE, Server, descendants, until

FIRST_ROUND, SECOND_ROUND = 3, 9


@pytest.fixture(scope="module")
def clip() -> Path:
    """2 s of 160x90 H.264 (a keyframe every 0.5 s) with AAC, to publish in a loop."""
    codecs = (*H264, "-g", "15", "-keyint_min", "15", "-sc_threshold", "0", *AAC)
    c = Clip(seconds=2, video=picture("160x90", 30), audio=(sine(),), codecs=codecs)
    return c.make(MEDIA_CACHE / "live-160x90-2s.mp4")


def _publish(server: Server, clip: Path, key: str) -> subprocess.Popen[bytes]:
    argv = ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-re"]
    argv += ["-stream_loop", "-1", "-i", str(clip), "-c", "copy", "-f", "flv"]
    return subprocess.Popen(
        [*argv, f"{server.rtmp_url}/{key}"], stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def _create(server: Server, n: int) -> list[dict[str, Any]]:
    with server.client() as c:
        out = []
        for _ in range(n):
            r = c.post("/api/v1/live-streams", json={"latency_mode": "low"})
            assert r.status_code == 201, r.text
            out.append(r.json()["data"])
        return out


def _delete(server: Server, stream: dict[str, Any]) -> None:
    with server.client() as c:
        assert c.delete(f"/api/v1/live-streams/{stream['id']}").status_code == 204


def _media_playlist(server: Server, stream: dict[str, Any]) -> str:
    """The URL of the stream's first variant, once its master playlist answers."""
    play = f"{server.url}/play/{stream['playback_ids'][0]['id']}"

    def master() -> str | None:
        r = httpx.get(f"{play}/master.m3u8", timeout=10)
        return r.text if r.status_code == 200 else None

    text = until(f"the master playlist of {stream['id']}", master, timeout=40)
    return f"{play}/{MasterPlaylist.parse(text).variants[0].uri}"


def _complete_segment(url: str) -> bool | None:
    r = httpx.get(url, timeout=10)
    if r.status_code != 200:
        return None
    return True if MediaPlaylist.parse(r.text).complete_segments else None


def _log(server: Server) -> list[dict[str, Any]]:
    entries = []
    for line in server.log_path.read_text(errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            entry = json.loads(line)
            if isinstance(entry, dict):
                entries.append(entry)
    return entries


def _idle(server: Server, ids: set[str]) -> bool | None:
    done = {e.get("live_stream_id") for e in _log(server) if e.get("event") == "live.idle"}
    return True if ids <= done else None


def _packagers(server: Server, ids: set[str]) -> set[int]:
    """The pids of every packager the server logged starting for ``ids``' sessions."""
    return {
        int(e["pid"])
        for e in _log(server)
        if e.get("event") == "live.packager_started"
        and any(f"/{i}/" in str(e.get("out_dir", "")) for i in ids)
    }


def test_deleted_streams_end_at_once_and_many_publish_together(
    sqlite_server: Server, clip: Path
) -> None:
    server = sqlite_server
    first = _create(server, FIRST_ROUND)
    pubs = [_publish(server, clip, s["stream_key"]) for s in first]
    second: list[dict[str, Any]] = []
    try:
        for s in first:  # each has published its tracks (the slate needs them)
            _media_playlist(server, s)
        _delete(server, first[0])  # its publisher is still on: dropped at the next check
        for p in pubs[1:]:
            p.kill()
            p.wait(timeout=10)
        for s in first[1:]:
            until(f"the slate of {s['id']}", lambda s=s: _slate_on(server, s["id"]))
            _delete(server, s)  # inside its 60 s reconnect window, its slate on
        ids = {s["id"] for s in first}
        # Within a poll of the delete, not at the end of the window (60 s).
        until("the deleted streams' sessions ending", lambda: _idle(server, ids), timeout=20)
        assert pubs[0].wait(timeout=20) is not None  # the server dropped it
        logged = _packagers(server, ids)
        assert len(logged) >= FIRST_ROUND
        until(
            "the deleted streams' packagers ending",
            lambda: True if not logged & set(descendants(server.proc.pid)) else None,
            timeout=20,
        )

        second = _create(server, SECOND_ROUND)
        pubs += [_publish(server, clip, s["stream_key"]) for s in second]
        urls = [_media_playlist(server, s) for s in second]
        for url in urls:
            until(f"a complete segment at {url}", lambda url=url: _complete_segment(url))
        assert all(p.poll() is None for p in pubs[FIRST_ROUND:])  # all still publishing
    finally:
        for p in pubs:
            p.kill()
            p.wait(timeout=10)
        for s in second:
            _delete(server, s)


def _slate_on(server: Server, live_stream_id: str) -> bool | None:
    for e in _log(server):
        if e.get("event") == "live.slate" and e.get("live_stream_id") == live_stream_id:
            return True
    return None
