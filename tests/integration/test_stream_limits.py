"""Concurrent streams across two `mediaplane up` processes sharing one PostgreSQL database,
one object store and the real Redis: the limit holds across both, the N+1th start is refused
with ``too_many_streams``, and a stream whose heartbeats stop frees itself (a short TTL).

The asset is processed on the first server before the second starts (each has its own
embedded broker); both have the same secret key, so a carry token from one plays on the other.
"""

from __future__ import annotations

import base64
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import m3u8
import pytest

from mediaplane.accounts import SESSION_COOKIE, create_session, create_user
from mediaplane.db import Database
from tests.support import (
    Backend,
    Server,
    make_clip,
    port_open,
    postgres_database,
    skip_or_fail,
    start_server,
)

TTL = 4.0


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Server, str, Any]]:
    """(server A, server B, a signed playback id, its signing key)."""
    if not port_open("127.0.0.1", 6379):
        skip_or_fail("Redis is not listening on 127.0.0.1:6379")
    url, drop = postgres_database()
    root = tmp_path_factory.mktemp("streams")
    namespace = f"mp_test_{uuid.uuid4().hex[:8]}"
    backend = Backend(
        "postgres+redis",
        {
            "MEDIAPLANE_DATABASE_URL": url,
            "MEDIAPLANE_STORAGE_URL": str(root / "objects"),
            "MEDIAPLANE_SECRET_KEY": "streams-test-" + uuid.uuid4().hex,
            "MEDIAPLANE_REDIS_URL": "redis://127.0.0.1:6379/0",
            "MEDIAPLANE_QUEUE_NAMESPACE": namespace,
            "MEDIAPLANE_MAX_STREAMS_PER_VIEWER": "1",
            "MEDIAPLANE_STREAM_TTL_SECONDS": str(TTL),
        },
    )
    servers: list[Server] = []
    try:
        a = start_server(root / "a", backend)
        servers.append(a)
        asset = a.wait(a.upload(make_clip("streams-240p-1s.mp4", seconds=1, size="426x240"))["id"])
        assert asset["status"] == "ready", asset
        with a.client() as c:
            key = c.post("/api/v1/signing-keys").json()["data"]
            r = c.post(f"/api/v1/assets/{asset['id']}/playback-ids", json={"policy": "signed"})
            assert r.status_code == 201, r.text
            pid = r.json()["data"]["id"]
        servers.append(start_server(root / "b", backend))
        yield a, servers[1], pid, key
    finally:
        stopping = [threading.Thread(target=server.stop) for server in servers]
        for t in stopping:
            t.start()
        for t in stopping:
            t.join()
        drop()


def _token(key: dict[str, str], pid: str, viewer: str) -> str:
    claims = {"sub": pid, "aud": "v", "exp": int(time.time()) + 600, "viewer_id": viewer}
    pem = base64.b64decode(key["private_key"])
    return jwt.encode(claims, pem, algorithm="RS256", headers={"kid": key["id"]})


def _start(srv: Server, pid: str, key: dict[str, str], viewer: str) -> httpx.Response:
    return httpx.get(
        f"{srv.url}/play/{pid}/master.m3u8", params={"token": _token(key, pid, viewer)}, timeout=30
    )


def _media(srv: Server, master: httpx.Response) -> httpx.Response:
    """The first media playlist of a started stream's master playlist, from ``srv``."""
    uri = m3u8.loads(master.text).playlists[0].uri
    r = httpx.get(f"{srv.url}/play/{master.url.path.split('/')[2]}/{uri}", timeout=30)
    assert r.status_code == 200, r.text
    return r


def _segment(srv: Server, master: httpx.Response) -> str:
    """The first segment's URL, on ``srv``, of a started stream's master playlist."""
    playlist = m3u8.loads(master.text, uri=str(master.url))
    media_url = playlist.playlists[0].absolute_uri
    r = httpx.get(media_url, timeout=30)
    assert r.status_code == 200, r.text
    segment = m3u8.loads(r.text, uri=media_url).segments[0].absolute_uri
    return srv.url + "/play/" + segment.split("/play/", 1)[1]


def _carry(master: httpx.Response) -> str:
    return m3u8.loads(master.text).playlists[0].uri.split("st=", 1)[1]


def _refused(r: httpx.Response) -> None:
    assert r.status_code == 429, (r.status_code, r.text)
    assert r.json()["error"]["code"] == "too_many_streams"
    assert r.headers["cache-control"] == "no-store" and int(r.headers["retry-after"]) >= 1


def test_the_limit_holds_across_processes_and_frees_when_heartbeats_stop(
    pair: tuple[Server, Server, str, Any],
) -> None:
    a, b, pid, key = pair
    first = _start(a, pid, key, "alice")
    assert first.status_code == 200, first.text
    segment_on_b = _segment(b, first)
    assert httpx.get(segment_on_b, timeout=30).status_code == 200  # a heartbeat through B

    _refused(_start(b, pid, key, "alice"))  # the second start, on the other process
    _refused(_start(a, pid, key, "alice"))
    bob = _start(b, pid, key, "bob")  # another account has its own
    assert bob.status_code == 200, bob.text
    # Each stream's playlists carry its own token (one template per asset, filled in).
    lists = [_media(b, m) for m in (first, bob)]
    assert lists[0].headers["etag"] != lists[1].headers["etag"]
    for m, media in zip((first, bob), lists, strict=True):
        assert "CARRY-TOKEN" not in m.text + media.text
        assert all(_carry(m) in line for line in media.text.splitlines() if ".m4" in line)

    # Pings keep the paused stream counted past its TTL (alternating processes).
    ping = f"/play/{pid}/stream"
    kept_until = time.monotonic() + 1.5 * TTL
    while time.monotonic() < kept_until:
        for srv in (a, b):
            r = httpx.post(srv.url + ping, params={"st": _carry(first)}, timeout=30)
            assert r.status_code == 200, r.text
            assert r.json()["data"]["ttl_seconds"] == TTL
        _refused(_start(b, pid, key, "alice"))
        time.sleep(TTL / 8)

    # The heartbeats stop: the stream frees itself and a new start succeeds.
    deadline = time.monotonic() + 30
    while (second := _start(b, pid, key, "alice")).status_code == 429:
        assert time.monotonic() < deadline, "the stream did not free itself"
        time.sleep(TTL / 4)
    assert second.status_code == 200, second.text

    # The first stream's player comes back: it is a new start now, over the limit.
    _refused(httpx.get(segment_on_b.replace(b.url, a.url), timeout=30))
    assert httpx.get(_segment(a, second), timeout=30).status_code == 200

    # Released early, the second stream's place is free at once (on either process).
    r = httpx.delete(f"{a.url}{ping}", params={"st": _carry(second)}, timeout=30)
    assert r.status_code == 204, r.text
    third = _start(b, pid, key, "alice")
    assert third.status_code == 200, third.text


def test_a_signed_in_session_counts_for_its_user(pair: tuple[Server, Server, str, Any]) -> None:
    """A viewer signed in on the watch page (a session cookie, a token without viewer_id):
    reloading the same video in the same session is the same stream; another session of
    the same user is a second stream, refused at the limit on the other process."""
    a, b, pid, key = pair
    db = Database(a.env["MEDIAPLANE_DATABASE_URL"])
    try:
        with db.session() as s:
            user = create_user(s, f"{uuid.uuid4().hex[:8]}@example.org", "correct horse battery")
            laptop = create_session(s, user, "laptop", 3600).token
            phone = create_session(s, user, "phone", 3600).token
            user_id = user.id
    finally:
        db.dispose()
    claims = {"sub": pid, "aud": "v", "exp": int(time.time()) + 600}
    token = jwt.encode(
        claims, base64.b64decode(key["private_key"]), algorithm="RS256", headers={"kid": key["id"]}
    )

    def start(srv: Server, cookie: str) -> httpx.Response:
        return httpx.get(
            f"{srv.url}/play/{pid}/master.m3u8",
            params={"token": token},
            cookies={SESSION_COOKIE: cookie},
            timeout=30,
        )

    first = start(a, laptop)
    assert first.status_code == 200, first.text
    assert f".{user_id}." in _carry(first)  # counted for the user
    assert start(b, laptop).status_code == 200  # a reload: the same stream
    _refused(start(b, phone))
    r = httpx.delete(f"{a.url}/play/{pid}/stream", params={"st": _carry(first)}, timeout=30)
    assert r.status_code == 204
    assert start(b, phone).status_code == 200


def test_stream_pings_need_a_good_carry_token(pair: tuple[Server, Server, str, Any]) -> None:
    a, _, pid, _ = pair
    ping = f"{a.url}/play/{pid}/stream"
    for params in ({}, {"st": "garbage"}, {"st": "1.0.x.y.1.sig"}):
        for method in ("POST", "DELETE"):
            r = httpx.request(method, ping, params=params, timeout=30)
            assert r.status_code == 403, (method, params, r.text)
            assert r.json()["error"]["code"] in {"token_missing", "token_signature"}


def test_the_streams_live_in_redis_under_the_namespace(
    pair: tuple[Server, Server, str, Any],
) -> None:
    import redis

    conn = redis.Redis.from_url("redis://127.0.0.1:6379/0")
    namespace = pair[0].env["MEDIAPLANE_QUEUE_NAMESPACE"]
    keys = list(conn.scan_iter(f"{namespace}:streams:*"))
    assert keys
    conn.close()
