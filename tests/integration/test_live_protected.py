"""A protected live stream on a real `mediaplane up`: ffmpeg publishes over RTMP to a
``cbcs`` stream whose keys rotate every 2 segments; its media playlist announces each key
epoch (EXT-X-KEY with the KID and our absolute licence URL, a new EXT-X-MAP), the epochs'
init segments carry different KIDs, and the keys our ClearKey licence server releases for
the playback id decrypt the segments with ffmpeg; the licence server refuses a missing or
forged carry token and a KID of another live stream, and audits every decision. The API
refuses ``aes-128`` for live and protection on a recorded stream; PATCH changes it."""

from __future__ import annotations

import base64
import json
import sqlite3
import subprocess
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from mediaplane.media import MasterPlaylist, MediaPlaylist
from tests.fmp4_index import indexed
from tests.support import (
    Server,
    live_publisher,
    live_stream,
    until,
)

PUBLISH_SECONDS = 40


@pytest.fixture(scope="module")
def server(rotating_keys_server: Server) -> Server:
    return rotating_keys_server


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _tenc_kid(init: bytes) -> bytes:
    at = init.index(b"tenc")
    return init[at + 4 + 4 + 4 : at + 4 + 4 + 4 + 16]


def _decodes(data: bytes, tmp: Path, key: bytes) -> list[str]:
    """The frame MD5s ffmpeg decodes from ``data`` with ``key`` (-xerror: a frame that does
    not decode fails it); empty when it fails."""
    path = tmp / "seg.mp4"
    path.write_bytes(data)
    argv = ["ffmpeg", "-v", "error", "-nostdin", "-xerror", "-decryption_key", key.hex()]
    argv += ["-i", str(path), "-map", "0:v", "-f", "framemd5", "-"]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    if out.returncode != 0:
        return []
    return [line.rsplit(",", 1)[-1] for line in out.stdout.splitlines() if line[:1] != "#"]


def _licence(url: str, kids: list[bytes]) -> httpx.Response:
    body = json.dumps({"kids": [_b64url(k) for k in kids], "type": "temporary"})
    return httpx.post(url, content=body, headers={"content-type": "application/json"})


def test_live_policy_on_the_api(server: Server) -> None:
    with server.client() as c:
        r = c.post("/api/v1/live-streams", json={"protection": "aes-128"})
        assert r.status_code == 400, r.text
        assert r.json()["error"]["code"] == "invalid_protection"
        assert "cbcs" in r.json()["error"]["message"]
        r = c.post("/api/v1/live-streams", json={"protection": "cbcs", "record": True})
        assert r.status_code == 400, r.text
        r = c.post("/api/v1/live-streams", json={})
        assert r.status_code == 201, r.text
        stream = r.json()["data"]
        assert stream["protection"] == "none"
        r = c.patch(f"/api/v1/live-streams/{stream['id']}", json={"protection": "cenc"})
        assert r.status_code == 200, r.text
        assert r.json()["data"]["protection"] == "cenc"
        r = c.patch(f"/api/v1/live-streams/{stream['id']}", json={"protection": "rot13"})
        assert r.status_code == 400, r.text
        c.delete(f"/api/v1/live-streams/{stream['id']}")


def _media(server: Server, pid: str) -> tuple[str, str]:
    """(media playlist URL, carry token) from the master playlist of ``pid``, once there."""
    play = f"{server.url}/play/{pid}"

    def master() -> MasterPlaylist | None:
        r = httpx.get(f"{play}/master.m3u8")
        return MasterPlaylist.parse(r.text) if r.status_code == 200 else None

    variant = until("the master playlist", master, timeout=40).variants[0].uri
    (st,) = parse_qs(urlsplit(variant).query)["st"]  # a public protected id carries one
    return f"{play}/{variant}", st


def test_rotating_cbcs_live_stream_decrypts_with_licensed_keys(
    server: Server, tmp_path: Path
) -> None:
    streams = [live_stream(server, protection="cbcs", reconnect_window_seconds=1) for _ in "ab"]
    a, b = (next(g) for g in streams)
    pubs = [live_publisher(f"{server.rtmp_url}/{s['stream_key']}", PUBLISH_SECONDS) for s in (a, b)]
    try:
        pid, other = a["playback_ids"][0]["id"], b["playback_ids"][0]["id"]
        media_url, st = _media(server, pid)
        _, other_st = _media(server, other)
        pubs[1].terminate()

        def rotated() -> MediaPlaylist | None:
            p = MediaPlaylist.parse(httpx.get(media_url).text)
            done = [s for s in p.segments if s.uri]
            return p if len({k for s in done for k in s.keys}) >= 2 and len(done) >= 4 else None

        playlist = until("two key epochs in the playlist", rotated, timeout=40)
        base = media_url.split("?", 1)[0].rsplit("/", 1)[0]
        epochs: list[tuple[bytes, str, list[str]]] = []  # (KID, init URI, segment URIs)
        for seg in playlist.segments:
            if seg.keys:
                (key_tag,) = seg.keys
                assert key_tag.method == "SAMPLE-AES"
                assert key_tag.keyformat == "org.w3.clearkey"
                assert seg.map is not None  # a new key epoch: a new init segment
                kid = bytes.fromhex(dict(key_tag.extra)["KEYID"][2:])
                licence = str(key_tag.uri)
                assert licence.startswith(f"{server.url}/drm/clearkey?")
                assert parse_qs(urlsplit(licence).query) == {"st": [st], "pid": [pid]}
                epochs.append((kid, seg.map.uri, []))
            if seg.uri and epochs:
                epochs[-1][2].append(seg.uri)
        complete = [e for e in epochs if len(e[2]) == 2]
        assert len(complete) >= 1 and len(epochs) >= 2
        assert len({e[0] for e in epochs}) == len(epochs)  # a new KID per epoch

        keys: dict[bytes, bytes] = {}
        for kid, init_uri, seg_uris in epochs[:2]:
            init = httpx.get(f"{base}/{init_uri}").content
            assert _tenc_kid(init) == kid
            r = _licence(licence, [kid])
            assert r.status_code == 200, r.text
            assert r.headers["cache-control"] == "no-store"
            (jwk,) = r.json()["keys"]
            assert jwk["kid"] == _b64url(kid)
            key = keys[kid] = base64.urlsafe_b64decode(jwk["k"] + "==")
            media = b"".join(httpx.get(f"{base}/{u}").content for u in seg_uris)
            frames = _decodes(indexed(init, media), tmp_path, key)
            assert len(frames) >= 20 * len(seg_uris), len(frames)  # ~1 s of 30 fps each
            wrong = _decodes(indexed(init, media), tmp_path, bytes(16))
            assert wrong != frames
        r = httpx.get(f"{server.url}/play/{pid}/thumbnail.jpg", params={"st": st})
        assert r.status_code == 404
        assert r.json()["error"]["code"] == "protected_stream"
        # No WebRTC for a protected stream: its media would go out in the clear.
        r = httpx.post(f"{server.url}/whep/{pid}", content=b"v=0\r\n")
        assert r.status_code == 403, r.text
        assert r.json()["error"]["code"] == "protected_stream"
        (k0, k1) = list(keys)[:2]
        # Both epochs' keys are released together (old keys stay releasable).
        r = _licence(licence, [k0, k1])
        assert r.status_code == 200, r.text
        assert len(r.json()["keys"]) == 2

        # Refusals: no token, a forged one, another stream's playback id and token.
        bare = f"{server.url}/drm/clearkey?pid={pid}"
        r = _licence(bare, [k0])
        assert r.status_code == 403
        assert r.json()["error"]["code"] == "token_missing"
        r = _licence(f"{bare}&st={other_st}", [k0])
        assert r.status_code == 403
        assert r.json()["error"]["code"] == "token_signature"
        r = _licence(f"{server.url}/drm/clearkey?st={other_st}&pid={other}", [k0])
        assert r.status_code == 403
        assert r.json()["error"]["code"] == "key_not_for_asset"
        db = sqlite3.connect(server.data_dir / "mediaplane.sqlite")
        rows = db.execute(
            "SELECT kid, granted, reason FROM key_releases WHERE asset_id IN (?, ?)",
            (a["id"], b["id"]),
        ).fetchall()
        reasons = {r[2] for r in rows}
        assert {"granted", "token_missing", "token_signature", "key_not_for_asset"} <= reasons
        assert any(r[0] == k0.hex() and r[1] for r in rows)
    finally:
        for p in pubs:
            p.terminate()
            p.wait(10)
        for g in streams:
            g.close()
