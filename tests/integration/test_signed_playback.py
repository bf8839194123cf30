"""Signed playback on a real `mediaplane up`: playback ids with a policy, RS256 playback
tokens on the master playlist and the MPD (thumbnails ``aud`` t, storyboards s), the carry
token in the URLs they render (media playlists and segments), and every refusal's reason.

One module-scoped embedded server; signing keys are revoked at the end only (a revoked key
is seen by the origin within its 5 s key cache, so that check polls).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import m3u8
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from mediaplane.delivery._access import CARRY_BUCKET, CARRY_SECONDS, CarryToken
from tests.support import Server, embedded_backend, make_clip, start_server

SETTLE = 20.0


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_server(tmp_path_factory.mktemp("signed"), embedded_backend())
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def asset(srv: Server) -> dict[str, Any]:
    created = srv.upload(make_clip("signed-2s.mp4", seconds=2, size="640x360"), "signed")
    done = srv.wait(created["id"])
    assert done["status"] == "ready", done
    return done


@pytest.fixture(scope="module")
def key(srv: Server) -> dict[str, str]:
    with srv.client() as c:
        r = c.post("/api/v1/signing-keys")
    assert r.status_code == 201, r.text
    data: dict[str, str] = r.json()["data"]
    return data


def _add(srv: Server, asset_id: str, policy: str) -> str:
    with srv.client() as c:
        r = c.post(f"/api/v1/assets/{asset_id}/playback-ids", json={"policy": policy})
    assert r.status_code == 201, r.text
    data = r.json()["data"]
    assert data["policy"] == policy
    pid: str = data["id"]
    return pid


@pytest.fixture(scope="module")
def signed(srv: Server, asset: dict[str, Any]) -> str:
    return _add(srv, asset["id"], "signed")


def _token(key: dict[str, str], pid: str, aud: str = "v", **claims: Any) -> str:
    body = {"sub": pid, "aud": aud, "exp": int(time.time()) + 600, **claims}
    pem = base64.b64decode(key["private_key"])
    return jwt.encode(body, pem, algorithm="RS256", headers={"kid": key["id"]})


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _code(r: httpx.Response) -> str:
    assert r.status_code == 403, (r.status_code, r.text)
    assert r.headers["cache-control"] == "no-store"
    code: str = r.json()["error"]["code"]
    assert r.json()["error"]["message"]
    return code


def _get(srv: Server, path: str, **params: str) -> httpx.Response:
    return httpx.get(srv.url + path, params=params, timeout=30)


def _play(srv: Server, url: str) -> tuple[m3u8.M3U8, m3u8.M3U8]:
    """The master at ``url`` and its first media playlist, each fetched and checked."""
    r = httpx.get(url, timeout=30)
    assert r.status_code == 200, r.text
    master = m3u8.loads(r.text, uri=url)
    r = httpx.get(master.playlists[0].absolute_uri, timeout=30)
    assert r.status_code == 200, r.text
    return master, m3u8.loads(r.text, uri=master.playlists[0].absolute_uri)


def test_playback_id_routes(srv: Server, asset: dict[str, Any]) -> None:
    with srv.client() as c:
        listed = c.get(f"/api/v1/assets/{asset['id']}").json()["data"]["playback_ids"]
        assert [p["policy"] for p in listed][:1] == ["public"]
        for bad in ({"policy": "secret"}, {"policy": "signed", "x": 1}, []):
            assert c.post(f"/api/v1/assets/{asset['id']}/playback-ids", json=bad).is_client_error
        r = c.post("/api/v1/assets/no-such-asset/playback-ids", json={"policy": "signed"})
        assert r.status_code == 404
        r = c.delete(f"/api/v1/assets/{asset['id']}/playback-ids/no-such-id")
        assert (r.status_code, r.json()["error"]["code"]) == (404, "not_found")
    anon = httpx.post(f"{srv.url}/api/v1/assets/{asset['id']}/playback-ids", json={})
    assert anon.status_code == 401


def test_a_public_playback_id_plays_as_before(srv: Server, asset: dict[str, Any]) -> None:
    pid = asset["playback_ids"][0]["id"]
    master, media = _play(srv, f"{srv.url}/play/{pid}/master.m3u8")
    assert "st=" not in master.dumps() + media.dumps()
    r = httpx.get(media.segments[0].absolute_uri, timeout=30)
    assert r.status_code == 200
    assert r.headers["cache-control"] == "public, max-age=31536000, immutable"


def test_a_valid_token_plays_and_carries_to_playlists_and_segments(
    srv: Server, signed: str, key: dict[str, str]
) -> None:
    url = f"{srv.url}/play/{signed}/master.m3u8?token={_token(key, signed)}"
    master, media = _play(srv, url)
    assert all("?st=" in p.uri for p in master.playlists)
    assert all("?st=" in s.uri for s in media.segments)
    assert "?st=" in media.segment_map[0].uri
    for _ in range(3):  # the first may take the route; then the lean path answers
        for seg in (media.segment_map[0].absolute_uri, media.segments[0].absolute_uri):
            r = httpx.get(seg, timeout=30)
            assert r.status_code == 200, r.text
            assert r.headers["cache-control"].startswith("private")
        again = httpx.get(master.playlists[0].absolute_uri, timeout=30)
        assert again.status_code == 200
        assert again.text == media.dumps() or "?st=" in again.text


def test_media_and_segments_without_a_good_carry_token(
    srv: Server, signed: str, key: dict[str, str], asset: dict[str, Any]
) -> None:
    url = f"{srv.url}/play/{signed}/master.m3u8?token={_token(key, signed)}"
    master, media = _play(srv, url)
    seg = media.segments[0].absolute_uri
    bare = seg.split("?")[0]
    playlist = master.playlists[0].absolute_uri.split("?")[0]
    st = seg.split("st=")[1]
    expires, height, sig = st.split(".")
    for target in (bare, playlist):
        assert _code(httpx.get(target, timeout=30)) == "token_missing"
        tampered = f"{int(expires) + 600}.{height}.{sig}"
        assert _code(httpx.get(target, params={"st": tampered})) == "token_signature"
        assert _code(httpx.get(target, params={"st": st[:-2] + "AA"})) == "token_signature"
        assert _code(httpx.get(target, params={"st": "garbage"})) == "token_signature"
        # a playback token is not a carry token
        assert _code(httpx.get(target, params={"token": _token(key, signed)})) == "token_missing"
    # the carry token of one signed id does not open another (of the same asset)
    other = _add(srv, asset["id"], "signed")
    for target in (bare, playlist):
        moved = target.replace(f"/play/{signed}/", f"/play/{other}/")
        assert _code(httpx.get(moved, params={"st": st})) == "token_signature"
    # expired: a carry token signed with the server's secret, issued long ago
    carry = CarryToken((srv.data_dir / "secret-key").read_text().strip())
    old = carry.issue(signed, None, time.time() - CARRY_SECONDS - 2 * CARRY_BUCKET)
    for target in (bare, playlist):
        assert _code(httpx.get(target, params={"st": old})) == "token_expired"
    assert httpx.get(seg, timeout=30).status_code == 200


def test_the_master_and_mpd_refuse_bad_tokens(
    srv: Server, signed: str, key: dict[str, str], asset: dict[str, Any]
) -> None:
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    other_pem = other_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    claims = {"sub": signed, "aud": "v", "exp": int(time.time()) + 600}
    public_pem = rsa_public_pem(srv, key)
    hs_header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": key["id"]}).encode())
    hs_body = _b64(json.dumps(claims).encode())
    hs_sig = _b64(hmac.new(public_pem, f"{hs_header}.{hs_body}".encode(), hashlib.sha256).digest())
    none_token = f"{_b64(json.dumps({'alg': 'none', 'kid': key['id']}).encode())}.{hs_body}."
    another = _add(srv, asset["id"], "signed")
    cases = {
        "token_missing": None,
        "token_signature": jwt.encode(
            claims, other_pem, algorithm="RS256", headers={"kid": key["id"]}
        ),
        "token_algorithm": none_token,
        "token_wrong_audience": _token(key, signed, aud="t"),
        "token_expired": _token(key, signed, exp=int(time.time()) - 10),
        "token_wrong_playback_id": _token(key, another),
        "token_unknown_key": jwt.encode(
            claims, other_pem, algorithm="RS256", headers={"kid": "no-such-key"}
        ),
        "token_malformed": "not.a.jwt",
    }
    for manifest in ("master.m3u8", "manifest.mpd"):
        for code, token in cases.items():
            params = {} if token is None else {"token": token}
            assert _code(_get(srv, f"/play/{signed}/{manifest}", **params)) == code, code
        hs = f"{hs_header}.{hs_body}.{hs_sig}"
        assert _code(_get(srv, f"/play/{signed}/{manifest}", token=hs)) == "token_algorithm"
        capped = _token(key, signed, max_resolution="big")
        assert _code(_get(srv, f"/play/{signed}/{manifest}", token=capped)) == "token_malformed"


def rsa_public_pem(srv: Server, key: dict[str, str]) -> bytes:
    """The public half of ``key`` as a PEM (what an attacker keying HS256 with it uses)."""
    private = serialization.load_pem_private_key(base64.b64decode(key["private_key"]), None)
    assert isinstance(private, rsa.RSAPrivateKey)
    return private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def test_dash_with_a_token(srv: Server, signed: str, key: dict[str, str]) -> None:
    r = _get(srv, f"/play/{signed}/manifest.mpd", token=_token(key, signed))
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"].startswith("private")
    media = re.search(r'media="([^"]+)"', r.text)
    init = re.search(r'initialization="([^"]+)"', r.text)
    rep = re.search(r'<Representation[^>]* id="([^"]+)"', r.text)
    assert media and init and rep, r.text
    assert "?st=" in media.group(1) and "?st=" in init.group(1)
    for template in (init.group(1), media.group(1)):
        path = template.replace("$RepresentationID$", rep.group(1)).replace("$Number$", "1")
        seg = httpx.get(f"{srv.url}/play/{signed}/{path}", timeout=30)
        assert seg.status_code == 200, (path, seg.text)
        bare = httpx.get(f"{srv.url}/play/{signed}/{path.split('?')[0]}", timeout=30)
        assert _code(bare) == "token_missing"


def test_thumbnails_and_storyboards_use_their_audience(
    srv: Server, signed: str, key: dict[str, str]
) -> None:
    thumb = f"/play/{signed}/thumbnail.jpg"
    assert _code(_get(srv, thumb, time="0")) == "token_missing"
    assert _code(_get(srv, thumb, time="0", token=_token(key, signed))) == "token_wrong_audience"
    r = _get(srv, thumb, time="0", width="160", token=_token(key, signed, aud="t"))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/jpeg"
    board = f"/play/{signed}/storyboard.vtt"
    assert _code(_get(srv, board, token=_token(key, signed, aud="t"))) == "token_wrong_audience"
    r = _get(srv, board, token=_token(key, signed, aud="s"))
    assert r.status_code == 200, r.text
    cue = next(line for line in r.text.splitlines() if line.startswith("thumbnail.jpg"))
    assert "&st=" in cue
    r = httpx.get(f"{srv.url}/play/{signed}/{cue}", timeout=30)  # the cue's own URL plays
    assert r.status_code == 200, r.text


def test_max_resolution_caps_the_ladder(srv: Server, signed: str, key: dict[str, str]) -> None:
    full, _ = _play(srv, f"{srv.url}/play/{signed}/master.m3u8?token={_token(key, signed)}")
    heights = sorted({p.stream_info.resolution[1] for p in full.playlists})
    if len(heights) < 2:
        pytest.skip("the ladder of this clip has one video rendition")
    token = _token(key, signed, max_resolution=f"{heights[0]}p")
    capped, _ = _play(srv, f"{srv.url}/play/{signed}/master.m3u8?token={token}")
    assert {p.stream_info.resolution[1] for p in capped.playlists} == {heights[0]}
    st = capped.playlists[0].uri.split("st=")[1]
    top = next(p for p in full.playlists if p.stream_info.resolution[1] == heights[-1])
    target = top.absolute_uri.split("?")[0]
    assert _code(httpx.get(target, params={"st": st})) == "token_max_resolution"


def test_removed_playback_ids_and_revoked_keys_stop_playing(
    srv: Server, asset: dict[str, Any]
) -> None:
    with srv.client() as c:
        key: dict[str, str] = c.post("/api/v1/signing-keys").json()["data"]
    pid = _add(srv, asset["id"], "signed")
    url = f"/play/{pid}/master.m3u8"
    assert _get(srv, url, token=_token(key, pid)).status_code == 200
    with srv.client() as c:
        assert c.delete(f"/api/v1/signing-keys/{key['id']}").status_code == 204
    deadline = time.monotonic() + SETTLE
    while (r := _get(srv, url, token=_token(key, pid))).status_code == 200:
        assert time.monotonic() < deadline, "a revoked key still plays"
        time.sleep(0.25)
    assert _code(r) == "token_key_revoked"
    with srv.client() as c:
        assert c.delete(f"/api/v1/assets/{asset['id']}/playback-ids/{pid}").status_code == 204
    deadline = time.monotonic() + SETTLE
    while (r := _get(srv, url)).status_code != 404:
        assert time.monotonic() < deadline, "a removed playback id still answers"
        time.sleep(0.25)
