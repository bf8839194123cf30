"""A live session that survives its publisher, on a real `mediaplane up`: ffmpeg publishes
over RTMP and is killed; during the gap the playlist keeps answering 200 and grows with
slate segments (after a discontinuity, under their own init segment); a new publisher (at
another size) continues the same playlist with a higher media sequence after another
discontinuity, and the MPD has a Period per publish; the resource's health says which input
is shown (primary, slate, backup). A stream whose packager ffmpeg is
killed goes on (a restarted one, after a discontinuity) while another stream on the same
server is untouched."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from mediaplane.clips import AAC, H264, Clip, picture, sine
from mediaplane.media import MPD, MasterPlaylist, MediaPlaylist
from tests.support import Server, cmdline, descendants, probe_decodes, until


def _publisher(url: str, size: str, seconds: int = 60) -> subprocess.Popen[bytes]:
    """ffmpeg pushing a clock pattern (a keyframe every 0.5 s) with a tone at real time."""
    clip = Clip(
        seconds=seconds,
        video=picture(size, 30),
        audio=(sine(440, 48000),),
        codecs=(*H264, "-tune", "zerolatency", "-g", "15", *AAC, "-b:a", "64k"),
        extra=("-f", "flv"),
    )
    return subprocess.Popen(
        clip.argv(url, realtime=True), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def _stop(pub: subprocess.Popen[bytes]) -> None:
    pub.kill()
    pub.wait(timeout=30)


@pytest.fixture
def stream(sqlite_server: Server) -> Iterator[dict[str, Any]]:
    with sqlite_server.client() as c:
        r = c.post(
            "/api/v1/live-streams", json={"latency_mode": "low", "reconnect_window_seconds": 12}
        )
        assert r.status_code == 201, r.text
        data: dict[str, Any] = r.json()["data"]
    yield data
    with sqlite_server.client() as c:
        c.delete(f"/api/v1/live-streams/{data['id']}")


class _Watcher:
    """Polls one media playlist; every answer must be a 200 with a playlist whose last
    media sequence number never goes back."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.last_msn = -1
        self.polls = 0

    def get(self) -> MediaPlaylist:
        r = httpx.get(self.url, timeout=15)
        assert r.status_code == 200, (r.status_code, r.text)
        playlist = MediaPlaylist.parse(r.text)
        msn = (playlist.media_sequence or 0) + len(playlist.segments) - 1
        assert msn >= self.last_msn
        self.last_msn = msn
        self.polls += 1
        return playlist

    def until(self, what: str, check: Any, timeout: float = 40.0) -> MediaPlaylist:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            playlist = self.get()
            if check(playlist):
                return playlist
            time.sleep(0.25)
        raise AssertionError(f"timed out waiting for {what}")


def _input(server: Server, stream: dict[str, Any], which: str) -> dict[str, Any]:
    """Wait until the stream's health on the resource says ``which`` input it shows."""

    def shown() -> dict[str, Any] | None:
        with server.client() as c:
            health = c.get(f"/api/v1/live-streams/{stream['id']}").json()["data"]["health"]
        return health if health and health.get("input") == which else None

    found: dict[str, Any] = until(f"health to show the {which} input", shown)
    return found


def _discontinuities(p: MediaPlaylist) -> int:
    """Discontinuities since the start of the stream (those left and those listed)."""
    return (p.discontinuity_sequence or 0) + sum(s.discontinuity for s in p.segments)


def _after(p: MediaPlaylist, n: int) -> list[Any]:
    """The complete segments after the ``n``-th discontinuity (counted from the start)."""
    seen, out = p.discontinuity_sequence or 0, []
    for seg in p.segments:
        seen += seg.discontinuity
        if seen == n and seg.uri is not None:
            out.append(seg)
    return out


def test_reconnect_continues_the_playlist_over_a_slate(
    sqlite_server: Server, stream: dict[str, Any]
) -> None:
    play = f"{sqlite_server.url}/play/{stream['playback_ids'][0]['id']}"
    url = f"{sqlite_server.rtmp_url}/{stream['stream_key']}"
    pub = _publisher(url, "320x180")
    try:
        deadline = time.monotonic() + 40
        while (r := httpx.get(f"{play}/master.m3u8")).status_code != 200:
            assert time.monotonic() < deadline, "no master playlist"
            time.sleep(0.25)
        master = MasterPlaylist.parse(r.text)
        watch = _Watcher(f"{play}/{master.variants[0].uri}")
        watch.until("a complete segment", lambda p: p.complete_segments)
    finally:
        _stop(pub)  # the publisher drops

    # The gap: always 200, and slate segments after a discontinuity, under their own init.
    slate = watch.until("slate segments", lambda p: _after(p, 1))
    assert not slate.endlist
    first_slate = _after(slate, 1)[0]
    assert first_slate.map is not None and first_slate.map.uri == "init-1.mp4"
    base = watch.url.rsplit("/", 1)[0]
    data = httpx.get(f"{base}/init-1.mp4").content + httpx.get(f"{base}/{first_slate.uri}").content
    info = probe_decodes(data)
    assert (info["streams"][0]["width"], info["streams"][0]["height"]) == (320, 180)
    with sqlite_server.client() as c:
        assert c.get(f"/api/v1/live-streams/{stream['id']}").json()["data"]["status"] == "active"
    assert _input(sqlite_server, stream, "slate")["input"] == "slate"  # on the resource
    slate_msn = watch.last_msn

    # The publisher is back (at another size): the same playlist goes on, higher numbers.
    pub = _publisher(url, "480x270")
    try:
        back = watch.until("the second publish's segments", lambda p: _after(p, 2))
        seg = _after(back, 2)[0]
        assert seg.map is not None and seg.map.uri == "init-2.mp4"
        assert watch.last_msn > slate_msn
        _input(sqlite_server, stream, "primary")
        data = httpx.get(f"{base}/init-2.mp4").content + httpx.get(f"{base}/{seg.uri}").content
        info = probe_decodes(data)
        assert (info["streams"][0]["width"], info["streams"][0]["height"]) == (480, 270)
        times = [s.program_date_time for s in back.segments if s.program_date_time]
        assert times == sorted(times)
        mpd = MPD.parse(httpx.get(f"{play}/manifest.mpd").text)
        assert mpd.type == "dynamic"
        assert [p.id for p in mpd.periods][-3:] == ["0", "1", "2"]
        audio = [m.uri for m in master.media if m.uri]
        assert audio
        # The audio rendition's discontinuities line up with the video's.
        _Watcher(f"{play}/{audio[0]}").until("audio's", lambda p: _discontinuities(p) == 2)
    finally:
        _stop(pub)
    assert watch.polls > 5


def test_backup_input_takes_over(sqlite_server: Server, stream: dict[str, Any]) -> None:
    """A backup publisher waits as standby; it takes over when the primary stalls (its
    ffmpeg stopped, the connection open), and the stalled primary, now the standby, takes
    over again when the backup's connection ends. A second primary is refused."""
    play = f"{sqlite_server.url}/play/{stream['playback_ids'][0]['id']}"
    key = stream["stream_key"]
    primary = _publisher(f"{sqlite_server.rtmp_url}/{key}", "320x180")
    backup: subprocess.Popen[bytes] | None = None
    try:
        deadline = time.monotonic() + 40
        while (r := httpx.get(f"{play}/master.m3u8")).status_code != 200:
            assert time.monotonic() < deadline, "no master playlist"
            time.sleep(0.25)
        watch = _Watcher(f"{play}/{MasterPlaylist.parse(r.text).variants[0].uri}")
        watch.until("a complete segment", lambda p: p.complete_segments)
        backup_url = sqlite_server.rtmp_url.replace("/live", "/live-backup") + f"/{key}"
        backup = _publisher(backup_url, "480x270")
        second = _publisher(f"{sqlite_server.rtmp_url}/{key}", "320x180", seconds=30)
        assert second.wait(timeout=30) != 0  # a second primary is refused
        deadline = time.monotonic() + 30
        while '"live.standby"' not in sqlite_server.log():
            assert time.monotonic() < deadline, "the backup did not become the standby"
            time.sleep(0.25)
        assert _discontinuities(watch.get()) == 0  # the standby's media waits

        primary.send_signal(signal.SIGSTOP)  # stalled: connected, no media
        deadline = time.monotonic() + 30
        while '"reason": "stalled"' not in sqlite_server.log():
            assert time.monotonic() < deadline, "no switch to the backup"
            time.sleep(0.1)
        primary.send_signal(signal.SIGCONT)  # sends again (before the server's idle timeout)
        taken = watch.until("the backup's segments", lambda p: _after(p, 1))
        seg = _after(taken, 1)[0]
        base = watch.url.rsplit("/", 1)[0]
        assert seg.map is not None
        data = httpx.get(f"{base}/{seg.map.uri}").content + httpx.get(f"{base}/{seg.uri}").content
        info = probe_decodes(data)
        assert (info["streams"][0]["width"], info["streams"][0]["height"]) == (480, 270)
        assert _input(sqlite_server, stream, "backup")["status"] != "failed"

        _stop(backup)  # the backup's connection ends: the primary (standby now) is back
        back = watch.until("the primary's segments", lambda p: _after(p, 2))
        seg = _after(back, 2)[0]
        assert seg.map is not None
        data = httpx.get(f"{base}/{seg.map.uri}").content + httpx.get(f"{base}/{seg.uri}").content
        info = probe_decodes(data)
        assert (info["streams"][0]["width"], info["streams"][0]["height"]) == (320, 180)
        assert '"reason": "disconnected"' in sqlite_server.log()
        _input(sqlite_server, stream, "primary")
        with sqlite_server.client() as c:
            data_ = c.get(f"/api/v1/live-streams/{stream['id']}").json()["data"]
        assert data_["status"] == "active"
    finally:
        primary.send_signal(signal.SIGCONT)
        _stop(primary)
        if backup is not None:
            _stop(backup)


def _packager_pid(server: Server, live_stream_id: str) -> int | None:
    """The pid of the newest packager ffmpeg of ``live_stream_id``, as the server logs it
    when it starts one (``live.packager_started``)."""
    pid = None
    for line in server.log_path.read_text(errors="replace").splitlines():
        if '"live.packager_started"' not in line:
            continue
        with contextlib.suppress(ValueError):
            entry = json.loads(line)
            if f"/{live_stream_id}/" in entry.get("out_dir", ""):
                pid = int(entry["pid"])
    return pid


def test_killed_packager_recovers_and_leaves_other_streams_alone(
    sqlite_server: Server, stream: dict[str, Any]
) -> None:
    """Two streams publish on one server; the first one's packager ffmpeg is killed (by the
    pid the server logged for it, a child of the server): that stream goes on, publisher
    still connected, after a discontinuity, and counts the restart in its health; the
    second one's playlist, publisher and health never notice."""
    with sqlite_server.client() as c:
        r = c.post("/api/v1/live-streams", json={"latency_mode": "low"})
        assert r.status_code == 201, r.text
        other: dict[str, Any] = r.json()["data"]
    pubs = [
        _publisher(f"{sqlite_server.rtmp_url}/{s['stream_key']}", "320x180")
        for s in (stream, other)
    ]
    try:
        watchers = []
        for s in (stream, other):
            play = f"{sqlite_server.url}/play/{s['playback_ids'][0]['id']}"
            deadline = time.monotonic() + 40
            while (r := httpx.get(f"{play}/master.m3u8")).status_code != 200:
                assert time.monotonic() < deadline, "no master playlist"
                time.sleep(0.25)
            watch = _Watcher(f"{play}/{MasterPlaylist.parse(r.text).variants[0].uri}")
            watch.until("a complete segment", lambda p: p.complete_segments)
            watchers.append(watch)
        watch, other_watch = watchers
        pid = _packager_pid(sqlite_server, stream["id"])
        assert pid is not None and pid in descendants(sqlite_server.proc.pid)
        assert "ffmpeg" in cmdline(pid)
        assert _packager_pid(sqlite_server, other["id"]) not in (None, pid)
        other_msn = other_watch.last_msn
        os.kill(pid, signal.SIGKILL)

        back = watch.until("segments after the restart", lambda p: _after(p, 1))
        seg = _after(back, 1)[0]
        assert seg.map is not None and seg.map.uri == "init-1.mp4"
        base = watch.url.rsplit("/", 1)[0]
        data = httpx.get(f"{base}/{seg.map.uri}").content + httpx.get(f"{base}/{seg.uri}").content
        assert probe_decodes(data)["streams"]
        new_pid = _packager_pid(sqlite_server, stream["id"])
        assert new_pid not in (None, pid)
        assert all(p.poll() is None for p in pubs)  # both publishers still connected
        with sqlite_server.client() as c:

            def restarted() -> dict[str, Any] | None:
                data = c.get(f"/api/v1/live-streams/{stream['id']}").json()["data"]
                health = data["health"] or {}
                return data if health.get("packager_restarts") == 1 else None

            data = until("the restart in the health figures", restarted)
            assert data["status"] == "active" and data["health"]["status"] != "failed"
            theirs = c.get(f"/api/v1/live-streams/{other['id']}").json()["data"]
        assert theirs["status"] == "active"
        assert theirs["health"]["packager_restarts"] == 0
        assert theirs["health"]["status"] != "failed"
        untouched = other_watch.get()
        assert _discontinuities(untouched) == 0 and other_watch.last_msn > other_msn
        assert _packager_pid(sqlite_server, other["id"]) in descendants(sqlite_server.proc.pid)
    finally:
        for pub in pubs:
            _stop(pub)
        with sqlite_server.client() as c:
            c.delete(f"/api/v1/live-streams/{other['id']}")
