"""tus concatenation and creation-defer-length on /api/v1/uploads, on both backends.

tuspy has no concatenation, so the protocol is driven with httpx here: partial uploads,
then a final upload naming them, exactly as the tus 1.0 spec writes the requests.
"""

from __future__ import annotations

import base64
import hashlib
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import Backend, Server, make_clip, start_server

TUS = {"Tus-Resumable": "1.0.0"}
OCTETS = {"Content-Type": "application/offset+octet-stream"}
MIB = 1 << 20


@pytest.fixture(scope="module")
def clip() -> Path:
    return make_clip("tus-2s.mp4", seconds=2, size="426x240")


@pytest.fixture(scope="module")
def big(clip: Path, tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The clip plus an ISO BMFF ``free`` box: 20 MiB that still plays, so on S3 each half
    is an 8 MiB part and a 2 MiB tail (whole and ranged part copies, one read-back)."""
    data = clip.read_bytes()
    pad = 20 * MIB - len(data)
    return data + pad.to_bytes(4, "big") + b"free" + bytes(pad - 8)


def _meta(**pairs: str) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in pairs.items())


def _partial(c: httpx.Client, data: bytes, *, send: bool = True) -> str:
    """A partial upload of ``data``, fully sent unless ``send`` is false."""
    r = c.post(
        "/api/v1/uploads",
        headers={**TUS, "Upload-Concat": "partial", "Upload-Length": str(len(data))},
    )
    assert r.status_code == 201, r.text
    url = str(r.headers["location"])
    if send:
        r = c.patch(url, headers={**TUS, **OCTETS, "Upload-Offset": "0"}, content=data)
        assert r.status_code == 204, r.text
        assert r.headers["upload-offset"] == str(len(data))
    return url


def _final(c: httpx.Client, urls: list[str], **meta: str) -> httpx.Response:
    headers = {**TUS, "Upload-Concat": "final;" + " ".join(urls)}
    if meta:
        headers["Upload-Metadata"] = _meta(**meta)
    return c.post("/api/v1/uploads", headers=headers)


def _json(c: httpx.Client, url: str) -> dict[str, Any]:
    r = c.get(url)
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()["data"]
    return data


def _error(r: httpx.Response, status: int) -> str:
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["tus-resumable"] == "1.0.0"
    message: str = r.json()["error"]["message"]
    return message


def test_options_advertises_concatenation_and_defer_length(server: Server) -> None:
    r = httpx.options(server.url + "/api/v1/uploads", timeout=10)
    assert r.status_code == 204
    ext = r.headers["tus-extension"].split(",")
    assert "concatenation" in ext and "creation-defer-length" in ext


def test_partials_concatenate_into_one_asset(server: Server, big: bytes) -> None:
    cut = len(big) // 2 + 12345  # uneven halves
    halves = [big[:cut], big[cut:]]
    with server.client() as c:
        urls = [_partial(c, half) for half in halves]
        for url, half in zip(urls, halves, strict=True):
            head = c.head(url, headers=TUS)
            assert head.status_code == 200
            assert head.headers["upload-concat"] == "partial"
            assert head.headers["upload-offset"] == head.headers["upload-length"] == str(len(half))
            up = _json(c, url)  # a finished partial is not an asset
            assert up["status"] == "waiting" and up["asset_id"] is None
            assert up["concat"] == "partial"
        r = _final(c, urls, filename="joined.mp4", title="Joined")
        assert r.status_code == 201, r.text
        final = r.headers["location"]
        assert final not in urls
        head = c.head(final, headers=TUS)
        assert head.status_code == 200
        assert head.headers["upload-concat"] == "final;" + " ".join(urls)
        assert head.headers["upload-offset"] == head.headers["upload-length"] == str(len(big))
        assert head.headers["upload-metadata"] == _meta(filename="joined.mp4", title="Joined")
        up = _json(c, final)
        assert up["status"] == "asset_created" and up["concat"] == "final"
        assert up["partial_uploads"] == [u.rsplit("/", 1)[1] for u in urls]
        # A final upload takes no bytes; its partials are spent and are no asset of their own.
        r = c.patch(final, headers={**TUS, **OCTETS, "Upload-Offset": "0"}, content=b"x")
        assert "partial" in _error(r, 403)
        for url in urls:
            part = _json(c, url)
            assert part["status"] == "concatenated"
            assert part["final_upload_id"] == up["id"]
            assert part["asset_id"] == up["asset_id"]
        assets = c.get("/api/v1/assets").json()["data"]
        assert [a["id"] for a in assets].count(up["asset_id"]) == 1
    asset = server.wait(up["asset_id"], timeout=120)
    assert asset["status"] == "ready", asset
    assert asset["title"] == "Joined" and asset["source_filename"] == "joined.mp4"
    stored = server.store().get_bytes(f"assets/{asset['id']}/source")
    assert hashlib.sha256(stored).digest() == hashlib.sha256(big).digest()


def test_final_refuses_bad_partials(server: Server) -> None:
    with server.client() as c:
        done = _partial(c, b"0123456789")
        unfinished = _partial(c, b"abcdef", send=False)
        ordinary = c.post("/api/v1/uploads", headers={**TUS, "Upload-Length": "4"})
        ordinary_url = ordinary.headers["location"]
        c.patch(ordinary_url, headers={**TUS, **OCTETS, "Upload-Offset": "0"}, content=b"wxyz")
        cancelled = _partial(c, b"zz", send=False)
        assert c.delete(cancelled, headers=TUS).status_code == 204
        base = done.rsplit("/", 1)[0]

        assert "does not exist" in _error(_final(c, [done, f"{base}/nosuchupload"]), 404)
        assert "not an upload URL" in _error(
            _final(c, [done, "http://other.example/api/v1/uploads/abc"]), 400
        )
        assert "not an upload URL" in _error(_final(c, [done, "/api/v1/assets/abc"]), 400)
        assert "not finished" in _error(_final(c, [done, unfinished]), 409)
        assert "not a partial upload" in _error(_final(c, [done, ordinary_url]), 400)
        assert "more than once" in _error(_final(c, [done, done]), 400)
        assert "cancelled" in _error(_final(c, [done, cancelled]), 410)
        r = c.post(
            "/api/v1/uploads",
            headers={**TUS, "Upload-Concat": f"final;{done}", "Upload-Length": "10"},
        )
        assert "Upload-Length" in _error(r, 400)
        r = c.post("/api/v1/uploads", headers={**TUS, "Upload-Concat": "whole"})
        assert "Upload-Concat" in _error(r, 400)
        # None of that used the finished partial up: it still makes a final upload, once.
        assert _json(c, done)["final_upload_id"] is None
        first = _final(c, [done])
        assert first.status_code == 201, first.text
        # The same request again (a retry after a lost response) gets the same upload...
        again = _final(c, [done])
        assert again.status_code == 201 and again.headers["location"] == first.headers["location"]
        # ...but the partial cannot go into a different final upload.
        assert "already part of final upload" in _error(_final(c, [done, unfinished]), 409)
        # An unfinished partial can still be finished and used.
        c.patch(unfinished, headers={**TUS, **OCTETS, "Upload-Offset": "0"}, content=b"abcdef")
        assert _final(c, [unfinished]).status_code == 201
        # A partial in a final upload cannot be cancelled behind its back.
        assert "final upload" in _error(c.delete(done, headers=TUS), 409)


def test_two_finals_racing_for_one_partial(server: Server) -> None:
    """Two final uploads name the same partial at the same moment: one wins (201), the
    other is refused (409); the partial's bytes are published once."""
    with server.client() as c:
        shared = _partial(c, b"S" * 1000)
        extras = [_partial(c, bytes([65 + i]) * 100) for i in range(2)]
    barrier = threading.Barrier(2)
    codes: list[int] = []

    def racer(extra: str) -> None:
        with server.client() as rc:
            barrier.wait(10)
            codes.append(_final(rc, [shared, extra]).status_code)

    threads = [threading.Thread(target=racer, args=(e,)) for e in extras]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(codes) == [201, 409], codes
    with server.client() as c:
        states = [_json(c, e)["status"] for e in extras]
        assert sorted(states) == ["concatenated", "waiting"]  # the loser's extra is free


def test_partial_checksum_still_applies(server: Server) -> None:
    body = b"checksummed partial"
    bad = base64.b64encode(hashlib.sha1(b"other").digest()).decode()
    good = base64.b64encode(hashlib.sha1(body).digest()).decode()
    with server.client() as c:
        url = _partial(c, body, send=False)
        h = {**TUS, **OCTETS, "Upload-Offset": "0"}
        r = c.patch(url, headers={**h, "Upload-Checksum": f"sha1 {bad}"}, content=body)
        assert r.status_code == 460
        assert "not finished" in _error(_final(c, [url]), 409)
        r = c.patch(url, headers={**h, "Upload-Checksum": f"sha1 {good}"}, content=body)
        assert r.status_code == 204
        assert _final(c, [url]).status_code == 201


def test_deferred_length(server: Server, clip: Path) -> None:
    data = clip.read_bytes()
    half = len(data) // 2
    with server.client() as c:
        r = c.post(
            "/api/v1/uploads",
            headers={**TUS, "Upload-Defer-Length": "1", "Upload-Metadata": _meta(title="later")},
        )
        assert r.status_code == 201, r.text
        url = r.headers["location"]
        head = c.head(url, headers=TUS)
        assert head.headers["upload-defer-length"] == "1"
        assert "upload-length" not in head.headers
        assert head.headers["upload-offset"] == "0"
        h = {**TUS, **OCTETS}
        r = c.patch(url, headers={**h, "Upload-Offset": "0"}, content=data[:half])
        assert r.status_code == 204 and r.headers["upload-offset"] == str(half)
        assert _json(c, url)["length"] is None
        # Too short a length is refused, and nothing stored is lost.
        r = c.patch(url, headers={**h, "Upload-Offset": str(half), "Upload-Length": "3"})
        assert "less than" in _error(r, 400)
        r = c.patch(
            url,
            headers={**h, "Upload-Offset": str(half), "Upload-Length": str(len(data))},
            content=data[half:],
        )
        assert r.status_code == 204, r.text
        head = c.head(url, headers=TUS)
        assert head.headers["upload-length"] == str(len(data))
        assert "upload-defer-length" not in head.headers
        up = _json(c, url)
        assert up["status"] == "asset_created", up
    asset = server.wait(up["asset_id"], timeout=120)
    assert asset["status"] == "ready" and asset["title"] == "later"
    assert server.store().get_bytes(f"assets/{asset['id']}/source") == data


def test_deferred_length_rules(server: Server) -> None:
    with server.client() as c:
        r = c.post("/api/v1/uploads", headers={**TUS, "Upload-Defer-Length": "2"})
        assert "must be 1" in _error(r, 400)
        r = c.post(
            "/api/v1/uploads", headers={**TUS, "Upload-Defer-Length": "1", "Upload-Length": "5"}
        )
        assert "not both" in _error(r, 400)
        r = c.post("/api/v1/uploads", headers={**TUS, "Upload-Length": "5"})
        url = r.headers["location"]
        h = {**TUS, **OCTETS, "Upload-Offset": "0"}
        r = c.patch(url, headers={**h, "Upload-Length": "6"}, content=b"abc")
        assert "cannot change" in _error(r, 400)
        r = c.patch(url, headers={**h, "Upload-Length": "5"}, content=b"abc")  # same: fine
        assert r.status_code == 204
        limit = int(httpx.options(server.url + "/api/v1/uploads").headers["tus-max-size"])
        r = c.post("/api/v1/uploads", headers={**TUS, "Upload-Defer-Length": "1"})
        deferred = r.headers["location"]
        r = c.patch(deferred, headers={**h, "Upload-Length": str(limit + 1)}, content=b"a")
        assert _error(r, 413)
        # A deferred partial has no length yet, so it is not finished.
        r = c.post(
            "/api/v1/uploads",
            headers={**TUS, "Upload-Defer-Length": "1", "Upload-Concat": "partial"},
        )
        part = r.headers["location"]
        c.patch(part, headers={**h}, content=b"abc")
        assert "not finished" in _error(_final(c, [part]), 409)
        r = c.patch(part, headers={**h, "Upload-Offset": "3", "Upload-Length": "3"}, content=b"")
        assert r.status_code == 204
        assert _final(c, [part]).status_code == 201


@pytest.fixture
def short_expiry(backend: Backend, tmp_path: Path) -> Any:
    s = start_server(tmp_path / "expiry", backend, upload_expiry_seconds="2")
    yield s
    s.stop()


def test_unused_partial_expires(short_expiry: Server) -> None:
    """A finished partial that no final upload claims expires like an unfinished upload:
    its bytes are deleted and a final naming it later is told it is gone."""
    with short_expiry.client() as c:
        url = _partial(c, b"soon gone")
        assert "upload-expires" in c.head(url, headers=TUS).headers
        deadline = time.monotonic() + 30
        while c.head(url, headers=TUS).status_code == 200:
            assert time.monotonic() < deadline, "the partial never expired"
            time.sleep(0.2)
        assert "expired" in _error(_final(c, [url]), 410)
        assert _json(c, url)["status"] == "errored"
