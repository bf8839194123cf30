"""Live over RTMP and SRT on a real `mediaplane up` (SQLite, embedded defaults): ffmpeg
publishes a generated clock pattern to ``rtmp://…/live/{stream_key}``; the stream goes
active, its public playback id serves an LL-HLS playlist with parts and blocking reload and
a DASH MPD, segments that decode, and when the publisher stops the playlist ends and the
stream goes idle. A second stream is published over SRT (``srt://…?streamid={stream_key}``,
MPEG-TS) and plays the same way. A wrong key is dropped before any media, on both. A
recorded stream's session (a publish, a drop, a reconnect) becomes one VOD asset covering
both publishes (the live segments, not re-encoded) that plays seconds after the stream goes
idle, from its own storage: the live directory is deleted.
HEVC with AC-3 over SRT, and H.264 with a 10 s GOP over RTMP, are transcoded and play."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from mediaplane.clips import AAC, Clip, picture, sine
from mediaplane.live._libsrt import load as load_libsrt
from mediaplane.media import MPD, MasterPlaylist, MediaPlaylist
from tests.support import (
    Server,
    ffprobe_json,
    live_publisher,
    live_segment_decodes,
    live_stream,
    skip_or_fail,
    until,
)

PUBLISH_SECONDS = 10
RECORD_SECONDS = 3  # each of two publishes


# Shared with the browser's live tests (tests/browser/test_live_players.py imports these).
_publisher = live_publisher
_until = until


def _stream(server: Server) -> Iterator[dict[str, Any]]:
    yield from live_stream(server, latency_mode="low", reconnect_window_seconds=4)


@pytest.fixture(scope="module")
def live(sqlite_server: Server) -> Iterator[dict[str, Any]]:
    yield from _stream(sqlite_server)


@pytest.fixture(scope="module")
def live_srt(sqlite_server: Server) -> Iterator[dict[str, Any]]:
    """A second stream on the same server, published over SRT."""
    yield from _stream(sqlite_server)


def _status(server: Server, stream: dict[str, Any]) -> str:
    with server.client() as c:
        status: str = c.get(f"/api/v1/live-streams/{stream['id']}").json()["data"]["status"]
    return status


def test_wrong_key_is_dropped(sqlite_server: Server, live: dict[str, Any]) -> None:
    started = time.monotonic()
    pub = _publisher(f"{sqlite_server.rtmp_url}/not-{live['stream_key']}", 30)
    _, err = pub.communicate(timeout=30)
    assert pub.returncode != 0
    assert time.monotonic() - started < 15  # not after pushing the whole clip
    with sqlite_server.client() as c:
        assert c.get(f"/api/v1/live-streams/{live['id']}").json()["data"]["status"] == "idle"


def test_publish_play_and_end(sqlite_server: Server, live: dict[str, Any]) -> None:
    pid = live["playback_ids"][0]["id"]
    play = f"{sqlite_server.url}/play/{pid}"
    assert httpx.get(f"{play}/master.m3u8").status_code == 404  # not live yet
    pub = _publisher(f"{sqlite_server.rtmp_url}/{live['stream_key']}", PUBLISH_SECONDS)
    try:
        master_text = _until(
            "the master playlist",
            lambda: (r := httpx.get(f"{play}/master.m3u8")).status_code == 200 and r.text or None,
        )
        with sqlite_server.client() as c:
            assert c.get(f"/api/v1/live-streams/{live['id']}").json()["data"]["status"] == "active"
        master = MasterPlaylist.parse(master_text)
        video = master.variants[0]
        session_id = video.uri.split("/")[0]
        mpd = MPD.parse(httpx.get(f"{play}/manifest.mpd").text)
        assert mpd.type == "dynamic" and mpd.availability_start_time and mpd.utc_timing
        sets = mpd.periods[0].adaptation_sets
        assert {a.content_type for a in sets} == {"video", "audio"}
        assert all(
            a.segment_template and (a.segment_template.media or "").startswith(session_id + "/")
            for a in sets
        )
        assert "avc1." in (video.codecs or "")
        media_url = f"{play}/{video.uri}"
        playlist = MediaPlaylist.parse(httpx.get(media_url).text)
        control = playlist.server_control
        assert playlist.part_target is not None and control is not None
        assert control.can_block_reload
        assert (control.part_hold_back or 0) >= 3 * playlist.part_target - 1e-9
        parts = [p for seg in playlist.segments for p in seg.parts]
        assert parts and all(p.duration <= playlist.part_target + 1e-9 for p in parts)
        assert playlist.preload_hints

        # Blocking reload: ask for the next part; the answer holds it.
        last = playlist.segments[-1]
        msn = playlist.media_sequence + len(playlist.segments) - 1
        want_part = len(last.parts)
        r = httpx.get(media_url, params={"_HLS_msn": msn, "_HLS_part": want_part}, timeout=15)
        assert r.status_code == 200
        newer = MediaPlaylist.parse(r.text)
        newer_msn = newer.media_sequence + len(newer.segments) - 1
        assert newer_msn > msn or len(newer.segments[-1].parts) > want_part
        too_far = httpx.get(media_url, params={"_HLS_msn": newer_msn + 3})
        assert too_far.status_code == 400
        # The newest part: the same bytes from memory (twice) as from its file (a range).
        part_url = f"{media_url.rsplit('/', 1)[0]}/{newer.segments[-1].parts[-1].uri}"
        whole = [httpx.get(part_url) for _ in range(2)]
        ranged = httpx.get(part_url, headers={"Range": "bytes=0-"})
        assert [w.status_code for w in whole] == [200, 200] and ranged.status_code == 206
        assert whole[0].content == whole[1].content == ranged.content != b""
        assert "immutable" in whole[0].headers["cache-control"]

        # The init segment and a complete segment decode.
        live_segment_decodes(media_url)
    finally:
        pub.wait(timeout=PUBLISH_SECONDS + 30)

    def ended() -> MediaPlaylist | None:
        p = MediaPlaylist.parse(httpx.get(media_url).text)
        return p if p.endlist else None

    final = _until("the end of the playlist", ended)
    assert MPD.parse(httpx.get(f"{play}/manifest.mpd").text).type == "static"
    assert sum(s.duration or 0 for s in final.segments) > PUBLISH_SECONDS / 3

    def idle() -> str | None:
        with sqlite_server.client() as c:
            status = c.get(f"/api/v1/live-streams/{live['id']}").json()["data"]["status"]
        return status if status == "idle" else None

    _until("the stream to go idle", idle)
    assert httpx.get(f"{play}/master.m3u8").status_code == 404


SRT_SECONDS = 6


@pytest.fixture
def libsrt() -> None:
    try:
        load_libsrt()
    except RuntimeError as exc:  # pragma: no cover - libsrt ships with ffmpeg here
        skip_or_fail(str(exc))


@pytest.mark.usefixtures("libsrt")
def test_srt_wrong_key_is_refused(sqlite_server: Server, live_srt: dict[str, Any]) -> None:
    started = time.monotonic()
    pub = _publisher(sqlite_server.srt_url(f"not-{live_srt['stream_key']}"), 30, "mpegts")
    _, err = pub.communicate(timeout=30)
    assert pub.returncode != 0
    assert time.monotonic() - started < 10  # refused at the handshake, not after the clip
    assert _status(sqlite_server, live_srt) == "idle"


@pytest.mark.usefixtures("libsrt")
def test_srt_publish_plays(sqlite_server: Server, live_srt: dict[str, Any]) -> None:
    pid = live_srt["playback_ids"][0]["id"]
    play = f"{sqlite_server.url}/play/{pid}"
    pub = _publisher(sqlite_server.srt_url(live_srt["stream_key"]), SRT_SECONDS, "mpegts")
    try:
        master = MasterPlaylist.parse(
            _until(
                "the master playlist",
                lambda: (
                    (r := httpx.get(f"{play}/master.m3u8")).status_code == 200 and r.text or None
                ),
            )
        )
        assert _status(sqlite_server, live_srt) == "active"
        (variant,) = master.variants
        assert "avc1." in (variant.codecs or "") and "mp4a." in (variant.codecs or "")
        assert master.media  # the AAC track as its own rendition
        for uri in (variant.uri, master.media[0].uri):
            assert uri is not None
            playlist = live_segment_decodes(f"{play}/{uri}")
            assert playlist.part_target is not None and playlist.server_control is not None
            assert playlist.server_control.can_block_reload
            assert any(seg.parts for seg in playlist.segments)
    finally:
        pub.wait(timeout=SRT_SECONDS + 30)
    assert pub.returncode == 0

    def ended() -> MediaPlaylist | None:
        p = MediaPlaylist.parse(httpx.get(f"{play}/{variant.uri}").text)
        return p if p.endlist else None

    final = _until("the end of the playlist", ended)
    assert sum(s.duration or 0 for s in final.segments) > SRT_SECONDS / 2
    _until(
        "the stream to go idle",
        lambda: "idle" if _status(sqlite_server, live_srt) == "idle" else None,
    )


TRANSCODE_SECONDS = 30  # at most: stopped once seen


def _health(server: Server, stream: dict[str, Any]) -> dict[str, Any] | None:
    with server.client() as c:
        health: dict[str, Any] | None = c.get(f"/api/v1/live-streams/{stream['id']}").json()[
            "data"
        ]["health"]
    return health


@pytest.mark.usefixtures("libsrt")
def test_hevc_ac3_over_srt_and_a_10s_gop_over_rtmp_are_transcoded(
    sqlite_server: Server, live: dict[str, Any], live_srt: dict[str, Any]
) -> None:
    """HEVC video with AC-3 audio over SRT, and H.264 with a keyframe every 10 s over RTMP,
    published at once: each is transcoded to H.264 (a keyframe a second) and AAC, plays,
    and says so (and why) in its health."""

    def publisher(url: str, codecs: tuple[str, ...], container: str) -> Any:
        clip = Clip(
            seconds=TRANSCODE_SECONDS,
            video=picture("320x180", 30),
            audio=(sine(440, 48000),),
            codecs=codecs,
            extra=("-f", container),
        )
        return subprocess.Popen(
            clip.argv(url, realtime=True), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )

    hevc = ("-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "log-level=error")
    gop10 = ("-c:v", "libx264", "-preset", "ultrafast", "-g", "300", "-keyint_min", "300")
    pubs = [
        publisher(sqlite_server.srt_url(live_srt["stream_key"]), (*hevc, "-c:a", "ac3"), "mpegts"),
        publisher(
            f"{sqlite_server.rtmp_url}/{live['stream_key']}",
            (*gop10, "-sc_threshold", "0", *AAC),
            "flv",
        ),
    ]
    try:
        for stream, reason in ((live_srt, "the video is HEVC"), (live, "keyframes are more")):
            play = f"{sqlite_server.url}/play/{stream['playback_ids'][0]['id']}"
            master = MasterPlaylist.parse(
                _until(
                    "the master playlist",
                    lambda play=play: (
                        (r := httpx.get(f"{play}/master.m3u8")).status_code == 200
                        and r.text
                        or None
                    ),
                )
            )
            (variant,) = master.variants
            assert "avc1." in (variant.codecs or "") and "mp4a.40.2" in (variant.codecs or "")
            assert variant.uri is not None
            playlist = live_segment_decodes(f"{play}/{variant.uri}")
            done = [s for s in playlist.segments if s.uri is not None]
            assert all((s.duration or 0) <= 2.1 for s in done)  # 1 s GOPs, 2 s segments
            health = _until(
                "the transcode in the health figures",
                lambda stream=stream: (h := _health(sqlite_server, stream)) and h["mode"] and h,
            )
            assert health["mode"] == "transcode" and reason in health["mode_reason"], health
        srt_health = _health(sqlite_server, live_srt)
        assert srt_health is not None
        assert srt_health["source_codecs"] == {"video": "HEVC", "audio": "AC-3"}
        assert "AC-3, not AAC" in srt_health["mode_reason"]
        rtmp_health = _health(sqlite_server, live)
        assert rtmp_health is not None and "audio" not in rtmp_health["mode_reason"]
    finally:
        for pub in pubs:
            pub.kill()
            pub.wait(timeout=30)


def test_recording_of_a_reconnected_session_plays_as_vod(sqlite_server: Server) -> None:
    """A recorded stream: a publish, a drop, a reconnect within the window, the end. The
    recording covers both publishes, one after the other, and plays as VOD."""
    with sqlite_server.client() as c:
        r = c.post(
            "/api/v1/live-streams",
            json={"latency_mode": "standard", "record": True, "reconnect_window_seconds": 3},
        )
        assert r.status_code == 201, r.text
        stream = r.json()["data"]
    try:
        for _ in range(2):  # the publisher drops after its clip and comes back at once
            pub = _publisher(f"{sqlite_server.rtmp_url}/{stream['stream_key']}", RECORD_SECONDS)
            _, err = pub.communicate(timeout=RECORD_SECONDS + 30)
            assert pub.returncode == 0, err[-2000:]

        def recorded() -> str | None:
            with sqlite_server.client() as c:
                data = c.get(f"/api/v1/live-streams/{stream['id']}").json()["data"]
            done = data["status"] == "idle" and data["recent_asset_ids"]
            return data["recent_asset_ids"][-1] if done else None

        asset_id = _until("the stream to go idle with its recording", recorded)
        with sqlite_server.client() as c:
            assert (
                len(
                    c.get(f"/api/v1/live-streams/{stream['id']}").json()["data"]["recent_asset_ids"]
                )
                == 1
            )

        def ready() -> dict[str, Any] | None:
            with sqlite_server.client() as c:
                asset: dict[str, Any] = c.get(f"/api/v1/assets/{asset_id}").json()["data"]
            assert asset["status"] != "errored", asset
            return asset if asset["status"] == "ready" else None

        asset = _until("the recording to be ready", ready, timeout=20)
        # Stored as the asset's own objects, the session's live segments are deleted; the
        # asset plays from its storage (below).
        live_dir = sqlite_server.data_dir / "live" / stream["id"]
        _until("the live directory to be deleted", lambda: not live_dir.exists() or None)
        assert asset["duration"] == pytest.approx(2 * RECORD_SECONDS, abs=1)  # both publishes
        play = f"{sqlite_server.url}/play/{asset['playback_ids'][0]['id']}"
        master = MasterPlaylist.parse(httpx.get(f"{play}/master.m3u8").text)
        variant = master.variants[0]
        assert variant.resolution == (320, 180) and "mp4a.40.2" in (variant.codecs or "")
        media_url = f"{play}/{variant.uri}"
        media = MediaPlaylist.parse(httpx.get(media_url).text)
        assert media.endlist and media.playlist_type == "VOD"
        total = sum(s.duration or 0 for s in media.segments)
        assert total == pytest.approx(2 * RECORD_SECONDS, abs=1)
        # ffmpeg plays the HLS through the origin: every frame of both publishes decodes.
        decode = subprocess.run(
            ["ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-i", f"{play}/master.m3u8"]
            + ["-map", "0:v:0", "-map", "0:a:0", "-f", "null", "-"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert decode.returncode == 0 and decode.stderr.strip() == "", decode.stderr[-2000:]
        info = ffprobe_json(f"{play}/{variant.uri}", "-count_frames")
        frames = int(info["streams"][0]["nb_read_frames"])
        assert frames == pytest.approx(2 * RECORD_SECONDS * 30, abs=30)
        mpd = MPD.parse(httpx.get(f"{play}/manifest.mpd").content)
        assert mpd.type == "static"
        kinds = {a.content_type for p in mpd.periods for a in p.adaptation_sets}
        assert kinds == {"video", "audio"}
    finally:
        with sqlite_server.client() as c:
            c.delete(f"/api/v1/live-streams/{stream['id']}")
