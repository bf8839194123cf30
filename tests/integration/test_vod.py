"""Upload → ready → HLS/DASH on disk and over HTTP agree, on both backends."""

from __future__ import annotations

from typing import Any

import httpx
import m3u8
import pytest
from mpegdash.parser import MPEGDASHParser

from tests.support import Server, ffprobe_json, make_clip, probe_decodes


@pytest.fixture(scope="module")
def ready_asset(server: Server) -> dict[str, Any]:
    clip = make_clip("vod-720p-2s.mp4", seconds=2, size="1280x720")
    asset = server.upload(clip, title="VOD test")
    assert asset["status"] == "preparing"
    done = server.wait(asset["id"])
    assert done["status"] == "ready", done
    return done


PROFILE_IDC = {"Constrained Baseline": 66, "Baseline": 66, "Main": 77, "High": 100}


def _play(asset: dict[str, Any]) -> str:
    return f"/play/{asset['playback_ids'][0]['id']}"


def test_asset_shape(ready_asset: dict[str, Any]) -> None:
    a = ready_asset
    assert a["status"] == "ready"
    assert a["progress"] == 100
    assert a["aspect_ratio"] == "16:9"
    assert a["max_resolution"] == "720p"
    assert 1.9 <= a["duration"] <= 2.2
    assert a["errors"] is None
    assert a["playback_ids"][0]["policy"] == "public"
    kinds = {t["type"] for t in a["tracks"]}
    assert kinds == {"video", "audio"}
    video = next(t for t in a["tracks"] if t["type"] == "video")
    assert (video["max_width"], video["max_height"]) == (1280, 720)
    heights = [r["height"] for r in video["renditions"]]
    assert heights == [240, 360, 480, 720]  # never upscaled, from the top rung down to 240p


def test_hls_playlists_agree_with_segments(server: Server, ready_asset: dict[str, Any]) -> None:
    base = server.url + _play(ready_asset)
    master = m3u8.loads(httpx.get(base + "/master.m3u8").text, uri=base + "/master.m3u8")
    assert master.is_variant
    assert len(master.playlists) == 4
    audio = [m for m in master.media if m.type == "AUDIO"]
    assert len(audio) == 1 and audio[0].group_id == "audio"
    for variant in master.playlists:
        si = variant.stream_info
        assert si.bandwidth >= si.average_bandwidth > 0
        video_codec, audio_codec = si.codecs.split(",")
        assert video_codec.startswith("avc1.") and audio_codec == "mp4a.40.2"
        assert si.frame_rate == pytest.approx(30.0)
        assert si.audio == "audio"
        media_url = variant.absolute_uri
        text = httpx.get(media_url).text
        assert "#EXT-X-INDEPENDENT-SEGMENTS" in text
        pl = m3u8.loads(text, uri=media_url)
        assert pl.playlist_type == "vod" and pl.is_endlist
        assert pl.segment_map and pl.segment_map[0].uri == "init.mp4"
        assert sum(s.duration for s in pl.segments) == pytest.approx(2.0, abs=0.05)
        assert all(s.duration <= pl.target_duration + 0.5 for s in pl.segments)
        # Every segment decodes, at the advertised resolution, and its size fits BANDWIDTH.
        init = httpx.get(media_url.rsplit("/", 1)[0] + "/init.mp4").content
        for seg in pl.segments:
            body = httpx.get(seg.absolute_uri).content
            assert len(body) * 8 / seg.duration <= si.bandwidth * 1.01
            info = probe_decodes(init + body)
            v = next(s for s in info["streams"] if s["codec_type"] == "video")
            assert (v["width"], v["height"]) == tuple(si.resolution)
            assert v["codec_name"] == "h264"
            # The CODECS string is the stream's own: avc1.PPCCLL = profile_idc, level_idc.
            assert int(video_codec[5:7], 16) == PROFILE_IDC[v["profile"]]
            assert int(video_codec[9:11], 16) == v["level"]


def test_dash_mpd_agrees_with_segments(server: Server, ready_asset: dict[str, Any]) -> None:
    base = server.url + _play(ready_asset)
    r = httpx.get(base + "/manifest.mpd")
    assert r.headers["content-type"].startswith("application/dash+xml")
    mpd = MPEGDASHParser.parse(r.text)
    assert mpd.type == "static"
    assert "urn:mpeg:dash:profile:isoff-live:2011" in mpd.profiles
    assert "urn:mpeg:dash:profile:cmaf:2019" in mpd.profiles
    sets = mpd.periods[0].adaptation_sets
    assert {a.content_type for a in sets} == {"video", "audio"}
    for aset in sets:
        for rep in aset.representations:
            st = rep.segment_templates[0]
            total, number = 0, int(st.start_number)
            for s in st.segment_timelines[0].Ss:
                for _ in range((s.r or 0) + 1):
                    url = f"{base}/{rep.id}/{number}.m4s"
                    assert httpx.head(url).status_code == 200
                    total += s.d
                    number += 1
            assert total / st.timescale == pytest.approx(2.0, abs=0.1)
            assert httpx.head(f"{base}/{rep.id}/{number}.m4s").status_code == 404
            full = httpx.get(f"{base}/{rep.id}/init.mp4").content
            for n in range(int(st.start_number), number):
                full += httpx.get(f"{base}/{rep.id}/{n}.m4s").content
            probed = probe_decodes(full)["streams"][0]
            assert rep.codecs.split(".")[0] in {"avc1", "mp4a"}
            assert probed["codec_name"] == ("h264" if aset.content_type == "video" else "aac")


def test_origin_headers(server: Server, ready_asset: dict[str, Any]) -> None:
    base = server.url + _play(ready_asset)
    cors = {"Origin": "http://127.0.0.2:9999"}
    r = httpx.get(base + "/master.m3u8", headers=cors)
    assert r.headers["content-type"] == "application/vnd.apple.mpegurl"
    assert r.headers["access-control-allow-origin"] == "*"
    etag = r.headers["etag"]
    assert httpx.get(base + "/master.m3u8", headers={"If-None-Match": etag}).status_code == 304
    head = httpx.head(base + "/v720/1.m4s", headers=cors)
    assert head.status_code == 200
    assert head.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert head.headers["content-type"] == "video/iso.segment"
    assert head.headers["etag"]
    size = int(head.headers["content-length"])
    full = httpx.get(base + "/v720/1.m4s").content
    assert len(full) == size
    part = httpx.get(base + "/v720/1.m4s", headers={"Range": "bytes=100-199", **cors})
    assert part.status_code == 206
    assert part.content == full[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{size}"
    assert "content-range" in part.headers["access-control-expose-headers"].lower()
    assert httpx.get(base + "/v720/init.mp4").headers["content-type"] == "video/mp4"
    assert httpx.get(base + "/audio/init.mp4").headers["content-type"] == "audio/mp4"
    pre = httpx.options(
        base + "/manifest.mpd",
        headers={
            **cors,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "range",
        },
    )
    assert pre.status_code == 200
    assert httpx.head(base + "/master.m3u8").status_code == 200
    for bad in ("/v999/1.m4s", "/v720/99.m4s", "/v720/..%2F..%2Fsource", "/V720/1.m4s"):
        assert httpx.get(base + bad).status_code == 404, bad


def test_thumbnail(server: Server, ready_asset: dict[str, Any], tmp_path: Any) -> None:
    base = server.url + _play(ready_asset)
    r = httpx.get(base + "/thumbnail.jpg", params={"time": 1.2, "width": 320})
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    (tmp_path / "t.jpg").write_bytes(r.content)
    v = ffprobe_json(tmp_path / "t.jpg")["streams"][0]
    assert v["width"] == 320 and v["height"] == 180
    assert httpx.get(base + "/thumbnail.jpg", params={"width": 99999}).status_code == 400


def test_auth_required(server: Server) -> None:
    r = httpx.get(server.url + "/api/v1/assets")
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "unauthorized"
    r = httpx.get(server.url + "/api/v1/assets", headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 401


def test_list_paginates(server: Server, ready_asset: dict[str, Any]) -> None:
    with server.client() as c:
        r = c.get("/api/v1/assets", params={"limit": 1})
        body = r.json()
        assert len(body["data"]) == 1
        assert body["pagination"]["total"] >= 1
        assert c.get("/api/v1/assets", params={"limit": 1000}).status_code == 400


def test_delete_removes_media(server: Server) -> None:
    clip = make_clip("delete-240p-1s.mp4", seconds=1, size="426x240")
    asset = server.wait(server.upload(clip, title="to delete")["id"])
    assert asset["status"] == "ready"
    store = server.store()
    prefix = f"assets/{asset['id']}/"
    assert len(list(store.list(prefix))) >= 5  # source + init and segment of video and audio
    with server.client() as c:
        assert c.delete(f"/api/v1/assets/{asset['id']}").status_code == 204
        assert c.get(f"/api/v1/assets/{asset['id']}").status_code == 404
        assert c.delete(f"/api/v1/assets/{asset['id']}").status_code == 404
    assert list(store.list(prefix)) == []
    assert httpx.get(server.url + _play(asset) + "/master.m3u8").status_code == 404


def test_metrics_and_health(server: Server, ready_asset: dict[str, Any]) -> None:
    text = httpx.get(server.url + "/metrics").text
    assert 'mediaplane_jobs{state="succeeded"}' in text
    assert "mediaplane_transcode_seconds_count" in text
    assert "mediaplane_http_request_duration_seconds_bucket" in text
    assert httpx.get(server.url + "/healthz").json() == {"status": "ok"}
    assert httpx.get(server.url + "/readyz").json()["status"] == "ready"
