"""Signed live playback on a real `mediaplane up`: a live stream whose playback id is
``signed`` plays like a signed VOD id. ffmpeg publishes over RTMP; the master playlist and
the MPD need an RS256 playback token (``?token=``) for that id, and refuse a missing,
expired or another id's token with VOD's codes; the URLs they render, and every URI of the
LL-HLS media playlists (segments, parts, map, preload hint, rendition reports), carry the
carry token (``?st=``) that media playlists and segments are checked with."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest

from mediaplane.media import MPD, MasterPlaylist, MediaPlaylist
from tests.support import Server, live_publisher, live_segment_decodes, live_stream, until

#: Longer than the test needs (a loaded machine is slow): the publisher is stopped at its end.
PUBLISH_SECONDS = 40


@pytest.fixture(scope="module")
def signed_live(sqlite_server: Server) -> Iterator[dict[str, Any]]:
    yield from live_stream(
        sqlite_server, latency_mode="low", playback_policy="signed", reconnect_window_seconds=1
    )


@pytest.fixture(scope="module")
def key(sqlite_server: Server) -> dict[str, str]:
    with sqlite_server.client() as c:
        r = c.post("/api/v1/signing-keys")
    assert r.status_code == 201, r.text
    data: dict[str, str] = r.json()["data"]
    return data


def _token(key: dict[str, str], pid: str, **claims: Any) -> str:
    body = {"sub": pid, "aud": "v", "exp": int(time.time()) + 600, **claims}
    pem = base64.b64decode(key["private_key"])
    return jwt.encode(body, pem, algorithm="RS256", headers={"kid": key["id"]})


def _code(r: httpx.Response) -> str:
    assert r.status_code == 403, (r.status_code, r.text[:300])
    assert r.headers["cache-control"] == "no-store"
    code: str = r.json()["error"]["code"]
    return code


def _st(uri: str) -> str:
    (value,) = parse_qs(urlsplit(uri).query)["st"]
    return value


def test_signed_live_needs_its_token(
    sqlite_server: Server, signed_live: dict[str, Any], key: dict[str, str]
) -> None:
    (pid_info,) = signed_live["playback_ids"]
    assert pid_info["policy"] == "signed"
    pid = pid_info["id"]
    with sqlite_server.client() as c:
        r = c.post(
            f"/api/v1/live-streams/{signed_live['id']}/playback-ids", json={"policy": "signed"}
        )
    assert r.status_code == 201, r.text
    other = r.json()["data"]["id"]
    play = f"{sqlite_server.url}/play/{pid}"
    good = {"token": _token(key, pid)}
    pub = live_publisher(f"{sqlite_server.rtmp_url}/{signed_live['stream_key']}", PUBLISH_SECONDS)
    try:
        master_r = until(
            "the signed master playlist",
            lambda: (
                (r := httpx.get(f"{play}/master.m3u8", params=good)).status_code == 200
                and r
                or None
            ),
        )
        assert master_r.headers["cache-control"].startswith("private")
        for manifest in ("master.m3u8", "manifest.mpd"):
            url = f"{play}/{manifest}"
            assert _code(httpx.get(url)) == "token_missing"
            wrong = {"token": _token(key, other)}
            assert _code(httpx.get(url, params=wrong)) == "token_wrong_playback_id"
            expired = {"token": _token(key, pid, exp=int(time.time()) - 10)}
            assert _code(httpx.get(url, params=expired)) == "token_expired"

        mpd = MPD.parse(httpx.get(f"{play}/manifest.mpd", params=good).text)
        templates = [a.segment_template for p in mpd.periods for a in p.adaptation_sets]
        assert templates and all(
            t is not None and "?st=" in (t.media or "") and "?st=" in (t.initialization or "")
            for t in templates
        )

        master = MasterPlaylist.parse(master_r.text)
        uris = [v.uri for v in master.variants] + [m.uri for m in master.media if m.uri]
        assert uris and all("?st=" in u for u in uris)
        media_url = f"{play}/{master.variants[0].uri}"
        bare = media_url.split("?", 1)[0]
        assert _code(httpx.get(bare)) == "token_missing"
        # the carry token of the stream's other signed id does not open this one
        other_master = httpx.get(
            f"{sqlite_server.url}/play/{other}/master.m3u8", params={"token": _token(key, other)}
        )
        assert other_master.status_code == 200, other_master.text
        other_st = _st(MasterPlaylist.parse(other_master.text).variants[0].uri)
        assert _code(httpx.get(bare, params={"st": other_st})) == "token_signature"

        playlist = live_segment_decodes(media_url)  # its URIs carry the token, as written
        st = _st(media_url)
        carried = [s.uri for s in playlist.segments if s.uri] + [
            p.uri for s in playlist.segments for p in s.parts
        ]
        carried += [s.map.uri for s in playlist.segments if s.map]
        carried += [h.uri for h in playlist.preload_hints]
        carried += [r.uri for r in playlist.rendition_reports]
        assert carried and all(_st(u) == st for u in carried)
        done = next(s.uri for s in playlist.segments if s.uri)
        assert _code(httpx.get(f"{bare.rsplit('/', 1)[0]}/{done.split('?')[0]}")) == (
            "token_missing"
        )

        # blocking reload keeps the token and the query's own parameters
        msn = playlist.media_sequence + len(playlist.segments) - 1
        r = httpx.get(media_url + f"&_HLS_msn={msn}&_HLS_part=0", timeout=15)
        assert r.status_code == 200 and r.headers["cache-control"].startswith("private")
        assert all(_st(p.uri) == st for s in MediaPlaylist.parse(r.text).segments for p in s.parts)
        # so does a delta update request (the unit tests skip segments of a longer playlist)
        r = httpx.get(media_url + "&_HLS_skip=YES", timeout=15)
        assert r.status_code == 200 and r.headers["cache-control"].startswith("private")
        delta = MediaPlaylist.parse(r.text)
        assert all(_st(s.uri) == st for s in delta.segments if s.uri)
        assert httpx.get(media_url + "&_HLS_skip=NO").status_code == 400
        # the next segment, sent as it is written (or whole if it completed meanwhile), is
        # still for this viewer only
        growing = f"{bare.rsplit('/', 1)[0]}/{msn + 1}.m4s"
        with httpx.stream("GET", growing, params={"st": st}, timeout=15) as r:
            assert r.status_code == 200
            assert r.headers["cache-control"].startswith("private")

    finally:
        pub.kill()
        pub.wait(timeout=30)
