"""Live ABR ladder, stream health, live thumbnails and the studio's live page, on a real
`mediaplane up` with ``MEDIAPLANE_LIVE_LADDER=abr``: ffmpeg publishes a 640x360 clock
pattern over RTMP; the master playlist lists the passthrough rung and an encoded lower one
whose segments cover the same media time under the same numbers and each begin with a
keyframe; the resource carries health figures while publishing; a publisher sending a codec
the packager refuses leaves ``health.status == "failed"`` with the reason; the playback id's
``thumbnail.jpg`` is a JPEG of the live picture; the studio's live page renders for the
stream's owner only."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from mediaplane.clips import AAC, H264, Clip, picture, sine
from mediaplane.media import Fmp4Reader, Fragment, MasterPlaylist, MediaPlaylist
from tests.support import Server, embedded_backend, ffprobe_json, start_server

#: Long enough for every test that looks at it; the fixture stops it after the last.
PUBLISH_SECONDS = 40


@pytest.fixture(scope="module")
def ladder_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = start_server(
        tmp_path_factory.mktemp("server-live-ladder"), embedded_backend(), live_ladder="abr"
    )
    yield s
    s.stop()


def _until(what: str, check: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (value := check()) is not None:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _create(server: Server, **body: Any) -> dict[str, Any]:
    with server.client() as c:
        r = c.post("/api/v1/live-streams", json={"reconnect_window_seconds": 1, **body})
        assert r.status_code == 201, r.text
        data: dict[str, Any] = r.json()["data"]
    return data


def _get(server: Server, stream: dict[str, Any]) -> dict[str, Any]:
    with server.client() as c:
        data: dict[str, Any] = c.get(f"/api/v1/live-streams/{stream['id']}").json()["data"]
    return data


def _publisher(url: str, seconds: int, codecs: tuple[str, ...] | None = None) -> Any:
    clip = Clip(
        seconds=seconds,
        video=picture("640x360", 30),
        audio=(sine(440, 48000),),
        codecs=codecs or (*H264, "-tune", "zerolatency", "-g", "30", *AAC, "-b:a", "64k"),
        extra=("-f", "flv"),
    )
    return subprocess.Popen(
        clip.argv(url, realtime=True), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )


def _fragments(init: bytes, segment: bytes) -> list[Fragment]:
    reader = Fmp4Reader()
    reader.feed(init)
    return [f for f in reader.feed(segment) if isinstance(f, Fragment)]


@pytest.fixture(scope="module")
def publishing(ladder_server: Server) -> Iterator[dict[str, Any]]:
    """One standard-latency stream with a publisher on it while the tests look."""
    stream = _create(ladder_server, latency_mode="standard")
    pub = _publisher(f"{ladder_server.rtmp_url}/{stream['stream_key']}", PUBLISH_SECONDS)
    try:
        yield stream
    finally:
        pub.kill()
        pub.wait(timeout=30)
        with ladder_server.client() as c:
            c.delete(f"/api/v1/live-streams/{stream['id']}")


def test_ladder_rungs_are_aligned(ladder_server: Server, publishing: dict[str, Any]) -> None:
    play = f"{ladder_server.url}/play/{publishing['playback_ids'][0]['id']}"

    def two_variants() -> MasterPlaylist | None:
        r = httpx.get(f"{play}/master.m3u8")
        master = MasterPlaylist.parse(r.text) if r.status_code == 200 else None
        return master if master and len(master.variants) >= 2 else None

    master = _until("a master playlist with two variants", two_variants)
    sizes = sorted(v.resolution for v in master.variants if v.resolution)
    assert sizes == [(426, 240), (640, 360)]
    assert all("avc1." in (v.codecs or "") and "mp4a." in (v.codecs or "") for v in master.variants)
    top, low = sorted(master.variants, key=lambda v: -(v.resolution or (0, 0))[1])
    assert top.bandwidth > low.bandwidth

    def segments(uri: str) -> dict[int, tuple[str, str]] | None:
        p = MediaPlaylist.parse(httpx.get(f"{play}/{uri}").text)
        done = {p.media_sequence + i: s for i, s in enumerate(p.segments) if s.uri}
        init = next((s.map.uri for s in p.segments if s.map is not None), None)
        base = uri.rsplit("/", 1)[0]
        if len(done) < 2 or init is None:
            return None
        return {msn: (f"{base}/{init}", f"{base}/{s.uri}") for msn, s in done.items()}

    a = _until("two segments of the top rung", lambda: segments(top.uri))
    b = _until("two segments of the lower rung", lambda: segments(low.uri))
    common = sorted(set(a) & set(b))[:2]
    assert common, (a, b)
    for msn in common:
        spans = []
        for init_uri, seg_uri in (a[msn], b[msn]):
            frags = _fragments(
                httpx.get(f"{play}/{init_uri}").content, httpx.get(f"{play}/{seg_uri}").content
            )
            assert frags and frags[0].sync  # each segment begins with a keyframe
            spans.append((frags[0].decode_time, sum(f.duration for f in frags)))
        (t0, d0), (t1, d1) = spans
        assert abs(t0 - t1) <= 2 and abs(d0 - d1) <= 2, spans  # the same media time


def test_health_while_publishing(ladder_server: Server, publishing: dict[str, Any]) -> None:
    def figures() -> dict[str, Any] | None:
        health = _get(ladder_server, publishing)["health"]
        ok = health and health.get("frame_rate") and health.get("keyframe_interval")
        return health if ok and health.get("encoder_speed") else None

    health = _until("health figures on the resource", figures)
    assert health["status"] in ("healthy", "degraded"), health
    assert health["error"] is None and health["updated_at"]
    assert health["input_bitrate"] > 50_000
    assert health["frame_rate"] == pytest.approx(30, abs=2)
    assert health["keyframe_interval"] == pytest.approx(1.0, abs=0.1)
    assert health["audio"] is True
    assert health["video"]["width"] == 640 and health["video"]["height"] == 360
    assert health["dropped_frames"] >= 0 and health["encoder_speed"] > 0.3
    assert len(health["ladder"]) == 1 and health["ladder"][0]["height"] == 240
    assert health["mode"] == "passthrough" and health["mode_reason"] is None
    assert health["source_codecs"] == {"video": "H.264", "audio": "AAC"}
    first = health["updated_at"]
    _until(
        "newer health figures",
        lambda: (
            (h := _get(ladder_server, publishing)["health"]) and h["updated_at"] != first or None
        ),
    )


def test_live_thumbnail_is_the_live_picture(
    ladder_server: Server, publishing: dict[str, Any]
) -> None:
    play = f"{ladder_server.url}/play/{publishing['playback_ids'][0]['id']}"

    def picture() -> httpx.Response | None:
        r = httpx.get(f"{play}/thumbnail.jpg", timeout=30)
        return r if r.status_code == 200 else None

    r = _until("a live thumbnail", picture)
    assert r.headers["content-type"] == "image/jpeg" and r.content[:2] == b"\xff\xd8"
    (stream,) = ffprobe_json("", data=r.content)["streams"]
    assert (stream["codec_name"], stream["width"], stream["height"]) == ("mjpeg", 640, 360)
    small = httpx.get(f"{play}/thumbnail.jpg", params={"width": 300}, timeout=30)
    assert small.status_code == 200
    (stream,) = ffprobe_json("", data=small.content)["streams"]
    assert (stream["width"], stream["height"]) == (320, 180)  # snapped up, as VOD's
    assert httpx.get(f"{play}/thumbnail.jpg", params={"width": "x"}).status_code == 400


def test_undecodable_video_leaves_a_failed_health(ladder_server: Server) -> None:
    stream = _create(ladder_server, latency_mode="low")
    try:
        pub = _publisher(
            f"{ladder_server.rtmp_url}/{stream['stream_key']}",
            1,
            # Sorenson Spark (transcoded when it decodes), every byte of it noise
            codecs=("-c:v", "flv1", "-bsf:v", "noise=amount=1", *AAC),
        )
        pub.communicate(timeout=40)

        def failed() -> dict[str, Any] | None:
            health = _get(ladder_server, stream)["health"]
            return health if health and health["status"] == "failed" else None

        health = _until("the failed state on the resource", failed)
        assert "could not be decoded (Sorenson H.263 video" in health["error"], health
        assert health["mode"] == "transcode"
        assert json.dumps(health)  # plain JSON
        _until(
            "the stream to go idle", lambda: _get(ladder_server, stream)["status"] == "idle" or None
        )
        assert _get(ladder_server, stream)["health"]["status"] == "failed"  # still readable
    finally:
        with ladder_server.client() as c:
            c.delete(f"/api/v1/live-streams/{stream['id']}")


PASSWORD = "correct horse battery staple"


def _user(server: Server, email: str) -> httpx.Client:
    """A signed-in browser of a new creator (made in the server's database, as the CLI
    does, without the CLI's start-up)."""
    from mediaplane.accounts import create_user_command
    from mediaplane.config import Settings

    create_user_command(Settings(data_dir=server.data_dir), email, PASSWORD, "creator")
    c = httpx.Client(base_url=server.url, timeout=30)
    r = c.post("/signin", data={"email": email, "password": PASSWORD, "csrf_token": _csrf(c)})
    assert r.status_code == 303, r.text
    return c


def _csrf(c: httpx.Client, path: str = "/signin") -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', c.get(path).text)
    assert m
    return m.group(1)


def test_studio_live_page(ladder_server: Server) -> None:
    anonymous = httpx.get(f"{ladder_server.url}/studio/live", follow_redirects=False)
    assert anonymous.status_code == 303 and "/signin" in anonymous.headers["location"]
    with contextlib.closing(_user(ladder_server, "live-owner@example.org")) as owner:
        r = owner.post(
            "/studio/channels", data={"name": "Live", "csrf_token": _csrf(owner, "/studio")}
        )
        assert r.status_code == 303, r.text
        r = owner.post(
            "/studio/live",
            data={
                "latency_mode": "low",
                "record": "on",
                "csrf_token": _csrf(owner, "/studio/live"),
            },
        )
        assert r.status_code == 303, r.text
        path = r.headers["location"]
        stream_id = path.rsplit("/", 1)[1]
        page = owner.get(path)
        assert page.status_code == 200
        with ladder_server.client() as api:
            stream = api.get(f"/api/v1/live-streams/{stream_id}").json()["data"]
        assert stream["latency_mode"] == "low" and stream["record"] is True
        html = page.text
        assert f'value="{ladder_server.rtmp_url}"' in html
        assert f'type="password" readonly id="stream-key" value="{stream["stream_key"]}"' in html
        assert "?streamid=" + stream["stream_key"] in html and "srt://" in html
        assert "OBS settings to copy" in html and "Keyframe interval" in html
        assert f"/play/{stream['playback_ids'][0]['id']}/master.m3u8" in html
        assert 'hx-get="/_partials/studio/live/' in html and 'data-status="idle"' in html
        assert stream_id in owner.get("/studio/live").text
        partial = owner.get(f"/_partials/studio/live/{stream_id}")
        assert partial.status_code == 200 and 'id="live-health"' in partial.text
    with contextlib.closing(_user(ladder_server, "someone-else@example.org")) as other:
        assert other.get(path).status_code == 403
        assert other.get(f"/_partials/studio/live/{stream_id}").status_code == 403
        assert stream_id not in other.get("/studio/live").text
