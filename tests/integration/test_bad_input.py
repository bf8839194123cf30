"""Hostile and broken inputs end as a clear 4xx or an errored asset, and touch nothing else."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from mediaplane.clips import Clip, picture
from tests.support import MEDIA_CACHE, Server, make_clip

RAW_YUV420 = ("-c:v", "rawvideo", "-pix_fmt", "yuv420p")


def _errored(server: Server, path: Path, filename: str | None = None) -> dict[str, Any]:
    asset = server.wait(server.upload(path, filename=filename)["id"], timeout=120)
    assert asset["status"] == "errored", asset
    assert asset["errors"]["type"] == "invalid_input"
    return asset


def _message(asset: dict[str, Any]) -> str:
    return " ".join(asset["errors"]["messages"])


@pytest.fixture(scope="module")
def bystander(server: Server) -> dict[str, Any]:
    """A ready asset whose media must survive every bad input below."""
    asset = server.wait(
        server.upload(make_clip("bystander-1s.mp4", seconds=1, size="426x240"))["id"]
    )
    assert asset["status"] == "ready"
    return asset


def _intact(server: Server, asset: dict[str, Any]) -> None:
    pid = asset["playback_ids"][0]["id"]
    assert httpx.get(f"{server.url}/play/{pid}/master.m3u8").status_code == 200
    assert httpx.get(f"{server.url}/play/{pid}/v240/1.m4s").status_code == 200


def test_not_media(server: Server, bystander: dict[str, Any], tmp_path: Path) -> None:
    bad = tmp_path / "notes.mp4"
    bad.write_text("this is not a video\n" * 100)
    asset = _errored(server, bad)
    assert "not a video we can read" in _message(asset)
    _intact(server, bystander)


def _outside_clip(tmp_path: Path, name: str, *extra: str) -> Path:
    """A playable clip in the test's own folder: outside the server's data dir."""
    clip = Clip(
        seconds=2,
        video=picture("320x240", 25),
        audio=(),
        codecs=("-c:v", "libx264", "-preset", "ultrafast"),
        extra=extra,
    )
    return clip.make(tmp_path / name, timeout=60)


def _hls_pointing_at(target: Path) -> bytes:
    return (
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-PLAYLIST-TYPE:VOD\n"
        f"#EXTINF:2.0,\n{target.as_uri()}\n#EXT-X-ENDLIST\n"
    ).encode()


def _mpd_pointing_at(target: Path) -> bytes:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" mediaPresentationDuration="PT2S"
     minBufferTime="PT1S" profiles="urn:mpeg:dash:profile:isoff-on-demand:2011">
 <Period><AdaptationSet mimeType="video/mp4" contentType="video">
  <Representation id="1" bandwidth="100000" width="320" height="240" codecs="avc1.64000d">
   <BaseURL>{target.as_uri()}</BaseURL>
  </Representation>
 </AdaptationSet></Period>
</MPD>
""".encode()


@pytest.mark.parametrize("kind", ["hls", "dash"])
def test_disguised_manifest_publishes_nothing(
    server: Server, bystander: dict[str, Any], tmp_path: Path, kind: str
) -> None:
    """A playlist or MPD named clip.mp4 that points (file://) at another playable file on
    the host errors; nothing of the other file is read into renditions or thumbnails."""
    if kind == "hls":
        target = _outside_clip(tmp_path, "elsewhere.ts", "-f", "mpegts")
        body = _hls_pointing_at(target)
    else:
        target = _outside_clip(tmp_path, "elsewhere.mp4", "-movflags", "+faststart")
        body = _mpd_pointing_at(target)
    assert not target.is_relative_to(server.data_dir)
    disguised = tmp_path / "clip.mp4"
    disguised.write_bytes(body)
    asset = _errored(server, disguised)
    assert "playlist/manifest" in _message(asset) and "not a video file" in _message(asset)
    assert asset["duration"] is None and asset["tracks"] == [] and not asset["renditions"]
    pid = asset["playback_ids"][0]["id"]
    for path in ("master.m3u8", "manifest.mpd", "thumbnail.jpg?time=1"):
        assert httpx.get(f"{server.url}/play/{pid}/{path}").status_code >= 400, path
    assert [o.key for o in server.store().list(f"assets/{asset['id']}/cmaf/")] == []
    _intact(server, bystander)


def test_empty_file(server: Server, tmp_path: Path) -> None:
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with server.client() as c:
        r = c.post("/api/v1/assets", files={"file": ("empty.mp4", b"")})
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "empty_file"


def test_truncated_mp4_without_index(
    server: Server, bystander: dict[str, Any], tmp_path: Path
) -> None:
    whole = make_clip("trunc-src.mp4", seconds=2, size="640x360").read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole[: len(whole) // 2])  # moov is at the end: it is gone
    assert "truncated or damaged" in _message(_errored(server, cut))
    _intact(server, bystander)


def test_truncated_mp4_with_index(server: Server, tmp_path: Path) -> None:
    whole = make_clip(
        "trunc-faststart.mp4", seconds=4, size="640x360", extra=["-movflags", "+faststart"]
    ).read_bytes()
    cut = tmp_path / "cut-faststart.mp4"
    cut.write_bytes(whole[: len(whole) // 2])  # index says 4 s, media stops half way
    assert "truncated" in _message(_errored(server, cut))


def test_no_video_or_audio_stream(server: Server, tmp_path: Path) -> None:
    """A Matroska file holding only subtitles. (Audio-only files are assets now:
    tests/integration/test_source_audio.py.)"""
    srt = tmp_path / "subs.srt"
    srt.write_text("1\n00:00:00,000 --> 00:00:01,000\nHello\n")
    subs = tmp_path / "subs.mkv"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(srt), "-c:s", "srt", str(subs)],
        check=True,
        timeout=60,
    )
    assert "no video or audio track" in _message(_errored(server, subs))


def _raw_mkv_with_size(side: int, tmp_path: Path) -> Path:
    """A real rawvideo Matroska file whose header claims side×side frames."""
    src = MEDIA_CACHE / "raw-640x360.mkv"
    raw = Clip(seconds=0.2, video=picture("640x360", 5), audio=(), codecs=RAW_YUV420)
    raw.make(src, timeout=60)
    data = src.read_bytes()
    w, h = b"\xb0\x82\x02\x80", b"\xba\x82\x01\x68"  # EBML PixelWidth=640, PixelHeight=360
    assert data.count(w) == 1 and data.count(h) == 1
    big = side.to_bytes(2, "big")
    data = data.replace(w, b"\xb0\x82" + big).replace(h, b"\xba\x82" + big)
    out = tmp_path / f"huge-{side}.mkv"
    out.write_bytes(data[:300_000])
    return out


def test_frame_size_20000(server: Server, tmp_path: Path) -> None:
    msg = _message(_errored(server, _raw_mkv_with_size(20000, tmp_path)))
    assert "frame size" in msg and "8192" in msg


def test_frame_size_over_limit(server: Server, tmp_path: Path) -> None:
    msg = _message(_errored(server, _raw_mkv_with_size(12000, tmp_path)))
    assert "12000×12000" in msg and "8192" in msg


def test_filename_with_dotdot(server: Server, tmp_path: Path) -> None:
    clip = make_clip("dotdot-1s.mp4", seconds=1, size="426x240")
    asset = server.wait(server.upload(clip, filename="../../../../tmp/evil.mp4")["id"])
    assert asset["status"] == "ready"
    assert asset["source_filename"] == "evil.mp4"
    assert not Path("/tmp/evil.mp4").exists()
    assert not (server.data_dir.parent / "evil.mp4").exists()


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("file:///etc/passwd", "url_refused"),
        ("ftp://example.org/a.mp4", "url_refused"),
        ("gopher://127.0.0.1:70/", "url_refused"),
        ("http://127.0.0.1:9/video.mp4", "url_refused"),  # loopback, not allow-listed
        ("http://[::1]:9/video.mp4", "url_refused"),
        ("http://localhost:9/video.mp4", "url_refused"),
        ("http://user:pw@127.0.0.1:9/v.mp4", "url_refused"),
        ("not a url", "url_refused"),
    ],
)
def test_url_refused(server: Server, url: str, code: str) -> None:
    with server.client() as c:
        before = c.get("/api/v1/assets").json()["pagination"]["total"]
        r = c.post("/api/v1/assets", json={"input": {"url": url}})
        assert r.status_code == 400, r.text
        assert r.json()["error"]["code"] == code
        assert c.get("/api/v1/assets").json()["pagination"]["total"] == before


def test_bad_requests(server: Server) -> None:
    with server.client() as c:
        assert c.post("/api/v1/assets", json={"input": {}}).status_code == 400
        assert c.post("/api/v1/assets", json={"nope": 1}).status_code == 400
        r = c.post("/api/v1/assets", content=b"x", headers={"Content-Type": "text/plain"})
        assert r.status_code == 415
        r = c.post("/api/v1/assets", files={"other": ("a.mp4", b"123")})
        assert r.status_code == 400 and r.json()["error"]["code"] == "missing_file"
        r = c.get("/api/v1/assets/doesnotexist")
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
