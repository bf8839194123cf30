"""tus 1.0 resumable uploads on /api/v1/uploads, against a real server on both backends.

The client is tuspy (the Python tus client) where a whole client behaves as one would;
raw httpx where a test needs exact headers or bad requests.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tusclient import client as tus_client

from tests.support import Backend, Server, make_clip, start_server

TUS = {"Tus-Resumable": "1.0.0"}
OCTETS = {"Content-Type": "application/offset+octet-stream"}


@pytest.fixture(scope="module")
def clip() -> Path:
    return make_clip("tus-2s.mp4", seconds=2, size="426x240")


def _tus(server: Server) -> tus_client.TusClient:
    return tus_client.TusClient(
        server.url + "/api/v1/uploads", headers={"Authorization": f"Bearer {server.token}"}
    )


def _meta(**pairs: str) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in pairs.items())


def _create(c: httpx.Client, length: int, **meta: str) -> str:
    headers = {**TUS, "Upload-Length": str(length)}
    if meta:
        headers["Upload-Metadata"] = _meta(**meta)
    r = c.post("/api/v1/uploads", headers=headers)
    assert r.status_code == 201, r.text
    return str(r.headers["location"])


def _upload_json(server: Server, url: str) -> dict[str, Any]:
    with server.client() as c:
        r = c.get(url, headers={"Accept": "application/json"})
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()["data"]
    return data


def _offset(c: httpx.Client, url: str) -> int:
    r = c.head(url, headers=TUS)
    assert r.status_code == 200, r.status_code
    return int(r.headers["upload-offset"])


def _asset_ready(server: Server, upload_url: str, source: bytes) -> dict[str, Any]:
    """The upload became an asset that is ready, and its stored source is ``source``."""
    up = _upload_json(server, upload_url)
    assert up["status"] == "asset_created", up
    assert up["offset"] == up["length"] == len(source)
    asset = server.wait(up["asset_id"], timeout=120)
    assert asset["status"] == "ready", asset
    assert server.store().get_bytes(f"assets/{asset['id']}/source") == source
    return asset


def test_options_advertises_tus(server: Server) -> None:
    r = httpx.options(server.url + "/api/v1/uploads", timeout=10)
    assert r.status_code == 204
    assert r.headers["tus-version"] == "1.0.0"
    assert r.headers["tus-resumable"] == "1.0.0"
    ext = set(r.headers["tus-extension"].split(","))
    assert {"creation", "creation-with-upload", "termination", "checksum", "expiration"} <= ext
    assert int(r.headers["tus-max-size"]) > 0
    assert "sha1" in r.headers["tus-checksum-algorithm"].split(",")
    # A browser's CORS preflight for a PATCH with tus headers is allowed.
    pre = httpx.options(
        server.url + "/api/v1/uploads/x",
        headers={
            "Origin": "http://example.test",
            "Access-Control-Request-Method": "PATCH",
            "Access-Control-Request-Headers": "tus-resumable,upload-offset,content-type",
        },
        timeout=10,
    )
    assert pre.status_code == 200
    assert "PATCH" in pre.headers["access-control-allow-methods"]


def test_tuspy_upload_becomes_ready_asset(server: Server, clip: Path) -> None:
    uploader = _tus(server).uploader(
        str(clip),
        chunk_size=64 * 1024,
        upload_checksum=True,
        metadata={
            "filename": "my clip.mp4",
            "title": "Uploaded with tus",
            "source_type": "ugc",
            "passthrough": "ref-42",
        },
    )
    uploader.upload()
    up = _upload_json(server, uploader.url)
    assert up["title"] == "Uploaded with tus" and up["source_type"] == "ugc"
    asset = _asset_ready(server, uploader.url, clip.read_bytes())
    assert asset["title"] == "Uploaded with tus"
    assert asset["source_filename"] == "my clip.mp4"
    assert asset["source_type"] == "ugc"
    assert asset["passthrough"] == "ref-42"
    with server.client() as c:  # a finished upload takes no more bytes
        r = c.patch(uploader.url, headers={**TUS, **OCTETS, "Upload-Offset": "0"}, content=b"x")
        assert r.status_code == 409, r.status_code


def test_interrupted_upload_resumes_in_a_fresh_client(server: Server, clip: Path) -> None:
    data = clip.read_bytes()
    first = _tus(server).uploader(str(clip), chunk_size=32 * 1024, metadata={"title": "resumed"})
    first.upload(stop_at=len(data) // 2)  # the "network" dies half way
    assert 0 < first.offset < len(data)
    fresh = _tus(server).uploader(str(clip), url=first.url, chunk_size=32 * 1024)
    assert fresh.offset == first.offset  # asked the server (HEAD), not started from 0
    fresh.upload()
    _asset_ready(server, first.url, data)


def test_checksum_mismatch_is_460_and_discarded(server: Server) -> None:
    body = os.urandom(4096)
    good = base64.b64encode(hashlib.sha1(body).digest()).decode()
    bad = base64.b64encode(hashlib.sha1(b"other").digest()).decode()
    with server.client() as c:
        url = _create(c, 2 * len(body))
        h = {**TUS, **OCTETS, "Upload-Offset": "0"}
        r = c.patch(url, headers={**h, "Upload-Checksum": f"sha1 {bad}"}, content=body)
        assert r.status_code == 460, r.text
        assert r.json()["error"]["code"] == "checksum_mismatch"
        assert _offset(c, url) == 0
        r = c.patch(url, headers={**h, "Upload-Checksum": f"sha1 {good}"}, content=body)
        assert r.status_code == 204 and r.headers["upload-offset"] == str(len(body))
        sha256 = base64.b64encode(hashlib.sha256(b"nope").digest()).decode()
        h["Upload-Offset"] = str(len(body))
        r = c.patch(url, headers={**h, "Upload-Checksum": f"sha256 {sha256}"}, content=body)
        assert r.status_code == 460
        r = c.patch(url, headers={**h, "Upload-Checksum": f"crc32 {good}"}, content=body)
        assert r.status_code == 400
        assert _offset(c, url) == len(body)
        assert c.delete(url, headers=TUS).status_code == 204


def test_oversize_is_413(server: Server) -> None:
    with server.client() as c:
        limit = int(httpx.options(server.url + "/api/v1/uploads").headers["tus-max-size"])
        r = c.post("/api/v1/uploads", headers={**TUS, "Upload-Length": str(limit + 1)})
        assert r.status_code == 413, r.text
        url = _create(c, 10)
        h = {**TUS, **OCTETS, "Upload-Offset": "0"}
        assert c.patch(url, headers=h, content=b"x" * 20).status_code == 413

        def chunks() -> Iterator[bytes]:  # no Content-Length: caught while streaming
            yield b"y" * 6
            yield b"y" * 6

        assert c.patch(url, headers=h, content=chunks()).status_code == 413
        assert _offset(c, url) == 0
        c.delete(url, headers=TUS)


def test_protocol_errors(server: Server) -> None:
    with server.client() as c:
        assert c.post("/api/v1/uploads", headers={"Upload-Length": "5"}).status_code == 412
        assert c.post("/api/v1/uploads", headers=TUS).status_code == 400  # no Upload-Length
        r = c.post(
            "/api/v1/uploads",
            headers={**TUS, "Upload-Length": "5", "Upload-Metadata": _meta(source_type="nope")},
        )
        assert r.status_code == 400 and "source_type" in r.json()["error"]["message"]
        url = _create(c, 10, filename="a.mp4")
        h = {**TUS, "Upload-Offset": "0"}
        r = c.patch(url, headers={**h, "Content-Type": "application/json"}, content=b"{}")
        assert r.status_code == 415
        r = c.patch(url, headers={**h, **OCTETS, "Upload-Offset": "3"}, content=b"abc")
        assert r.status_code == 409
        r = c.head(url, headers=TUS)
        assert r.status_code == 200
        assert r.headers["upload-length"] == "10" and r.headers["upload-offset"] == "0"
        assert r.headers["cache-control"] == "no-store"
        assert r.headers["upload-metadata"] == _meta(filename="a.mp4")
        assert "GMT" in r.headers["upload-expires"]
        assert httpx.head(url, headers=TUS).status_code == 401
        assert c.head("/api/v1/uploads/nope", headers=TUS).status_code == 404
        assert c.delete(url, headers=TUS).status_code == 204
        assert c.head(url, headers=TUS).status_code == 410
        assert c.patch(url, headers={**h, **OCTETS}, content=b"abc").status_code == 410
        assert _upload_json(server, url)["status"] == "cancelled"


def test_creation_with_upload(server: Server) -> None:
    with server.client() as c:
        r = c.post(
            "/api/v1/uploads",
            headers={**TUS, **OCTETS, "Upload-Length": "10"},
            content=b"01234",
        )
        assert r.status_code == 201, r.text
        assert r.headers["upload-offset"] == "5"
        url = r.headers["location"]
        assert _offset(c, url) == 5
        c.delete(url, headers=TUS)


def test_concurrent_patch_same_offset_one_wins(server: Server, clip: Path) -> None:
    """Two clients PATCH the same bytes at the same offset at once, slowly: exactly one is
    let in (204), the other is refused (409 offset moved on, or 423 locked), and the bytes
    are stored once — no interleaving, no double append."""
    data = clip.read_bytes()
    half = len(data) // 2
    barrier = threading.Barrier(2)
    codes: list[int] = []
    with server.client() as c:
        url = _create(c, len(data), filename="race.mp4")

        def slow() -> Iterator[bytes]:
            step = 16 * 1024
            for i in range(0, half, step):
                yield data[i : min(i + step, half)]
                time.sleep(0.02)  # bounded: half / step steps

        def writer() -> None:
            with server.client() as cw:
                h = {**TUS, **OCTETS, "Upload-Offset": "0", "Content-Length": str(half)}
                barrier.wait(10)
                codes.append(cw.patch(url, headers=h, content=slow()).status_code)

        threads = [threading.Thread(target=writer) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert sorted(codes)[0] == 204 and sorted(codes)[1] in (409, 423), codes
        assert _offset(c, url) == half
        h = {**TUS, **OCTETS, "Upload-Offset": str(half)}
        assert c.patch(url, headers=h, content=data[half:]).status_code == 204
    _asset_ready(server, url, data)


@pytest.fixture
def short_expiry(backend: Backend, tmp_path: Path) -> Iterator[Server]:
    s = start_server(tmp_path / "expiry", backend, upload_expiry_seconds="1")
    yield s
    s.stop()


def test_expired_upload_is_gone(short_expiry: Server) -> None:
    with short_expiry.client() as c:
        url = _create(c, 100)
        h = {**TUS, **OCTETS, "Upload-Offset": "0"}
        r = c.patch(url, headers=h, content=b"x" * 10)
        assert r.status_code == 204 and "upload-expires" in r.headers
        deadline = time.monotonic() + 20
        while (status := c.head(url, headers=TUS).status_code) == 200:
            assert time.monotonic() < deadline, "the upload never expired"
            time.sleep(0.2)
        assert status in (404, 410)
        h["Upload-Offset"] = "10"
        assert c.patch(url, headers=h, content=b"y" * 10).status_code in (404, 410)
    up = _upload_json(short_expiry, url)
    assert up["status"] == "errored" and "expired" in up["error"]


def test_server_killed_mid_upload_resumes(backend: Backend, tmp_path: Path, clip: Path) -> None:
    data = clip.read_bytes()
    server = start_server(tmp_path / "killed", backend, upload_lock_seconds="3")
    path = ""
    try:
        with server.client() as c:
            url = _create(c, len(data), filename="killed.mp4", title="survivor")
            path = url.split("/api/v1/", 1)[1]
            quarter = len(data) // 4
            h = {**TUS, **OCTETS, "Upload-Offset": "0"}
            assert c.patch(url, headers=h, content=data[:quarter]).status_code == 204
        sent = threading.Event()

        def trickle() -> Iterator[bytes]:
            for i in range(quarter, len(data), 8192):
                yield data[i : i + 8192]
                sent.set()
                time.sleep(0.05)

        def doomed() -> None:
            h = {**TUS, **OCTETS, "Upload-Offset": str(quarter)}
            with server.client() as c2, pytest.raises(httpx.HTTPError):
                c2.patch(url, headers=h, content=trickle())

        t = threading.Thread(target=doomed)
        t.start()
        assert sent.wait(30)
        time.sleep(0.3)  # some bytes of the second chunk are on the wire
        os.killpg(server.proc.pid, signal.SIGKILL)
        server.proc.wait(10)
        t.join(60)
    finally:
        server.stop()
    server = start_server(tmp_path / "killed", backend, upload_lock_seconds="3")
    try:
        url = f"{server.url}/api/v1/{path}"
        with server.client() as c:
            assert _offset(c, url) >= quarter  # the stored offset survived the restart
        resumed = _tus(server).uploader(str(clip), url=url, retries=10, retry_delay=1)
        assert resumed.offset >= quarter
        resumed.upload()  # a 423 while the dead server's lock runs out is retried
        asset = _asset_ready(server, url, data)
        assert asset["title"] == "survivor"
        with server.client() as c:
            playback = c.get(asset["playback"]["hls"])
        assert playback.status_code == 200 and "#EXTM3U" in playback.text
    finally:
        server.stop()


def _padded_clip(tmp_path: Path, clip: Path, size: int) -> Path:
    """The clip plus an ISO BMFF ``free`` box, so it is big enough to interrupt and still plays."""
    out = tmp_path / "padded.mp4"
    pad = size - clip.stat().st_size
    out.write_bytes(clip.read_bytes() + pad.to_bytes(4, "big") + b"free" + bytes(pad - 8))
    return out


def test_cli_ingest_resumes_after_interruption(server: Server, tmp_path: Path, clip: Path) -> None:
    big = _padded_clip(tmp_path, clip, 12 * 1024 * 1024)
    env = {**server.env, "MEDIAPLANE_TOKEN": server.token, "XDG_CACHE_HOME": str(tmp_path)}
    state = tmp_path / "mediaplane" / "uploads.json"
    argv = [sys.executable, "-m", "mediaplane", "ingest", str(big), "--server", server.url]
    first = subprocess.Popen(
        [*argv, "--chunk-size", "1M", "--limit-rate", "3M"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        offset = 0
        with server.client() as c:
            while offset < 1024 * 1024:
                assert first.poll() is None, first.stderr.read() if first.stderr else ""
                assert time.monotonic() < deadline, "the CLI uploaded nothing"
                time.sleep(0.1)
                if state.exists():
                    urls = list(json.loads(state.read_text()).values())
                    if urls:
                        offset = _offset(c, urls[0])
        first.send_signal(signal.SIGKILL)  # a crash, not a polite Ctrl-C
    finally:
        first.kill()
        first.wait(10)
    url = next(iter(json.loads(state.read_text()).values()))
    with server.client() as c:
        stopped_at = _offset(c, url)
    assert 0 < stopped_at < big.stat().st_size
    second = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=180, check=False)
    assert second.returncode == 0, second.stderr
    assert "resuming upload at" in second.stderr
    resumed_from = int(second.stderr.split("resuming upload at", 1)[1].split()[0])
    assert resumed_from >= stopped_at > 0  # did not start from 0
    lines = dict(line.split(":", 1) for line in second.stdout.strip().splitlines())
    assert lines["HLS"].strip().endswith("/master.m3u8")
    assert "/watch/" in lines["Watch"]
    assert json.loads(state.read_text()) == {}  # finished uploads are forgotten
    up = _upload_json(server, url)
    assert up["status"] == "asset_created"
    assert server.store().get_bytes(f"assets/{up['asset_id']}/source") == big.read_bytes()


HOSTILE_IDS = [
    "..",
    "..%2F..%2Fetc%2Fpasswd",
    "%2e%2e%2f%2e%2e%2fadmin-token",
    "~staged",
    "uploads%2F..%2F..%2Fmediaplane.sqlite",
    "%00",
    "A" * 300,
    "abc%5C..%5C..",
]


def _tree(root: Path) -> dict[str, int]:
    """Files a hostile id could aim at: all but those background jobs of other tests
    write meanwhile (renditions, work and cache dirs, the databases and the log)."""
    busy = ("objects/assets/", "work/", "tmp/", "cache/")
    out: dict[str, int] = {}
    for p in root.rglob("*"):
        rel = str(p.relative_to(root))
        if p.is_file() and not rel.startswith(busy) and ".sqlite" not in p.name:
            out[rel] = p.stat().st_size
    out.pop("server.log", None)
    return out


@pytest.mark.parametrize("upload_id", HOSTILE_IDS)
def test_hostile_upload_ids(server: Server, upload_id: str) -> None:
    """An upload id is a name the server made: anything else a request names is 404 (or
    another 4xx JSON answer), and no file appears, moves or grows anywhere."""
    before = _tree(server.data_dir)
    h = {**TUS, **OCTETS, "Upload-Offset": "0"}
    url = f"/api/v1/uploads/{upload_id}"
    with server.client() as c:
        answers = [
            c.head(url, headers=TUS),
            c.get(url),
            c.patch(url, headers=h, content=b"x" * 100),
            c.post(url, headers={**h, "X-HTTP-Method-Override": "PATCH"}, content=b"x" * 100),
            c.delete(url, headers=TUS),
        ]
        final = c.post(
            "/api/v1/uploads",
            headers={**TUS, "Upload-Concat": f"final;{server.url}/api/v1/uploads/{upload_id}"},
        )
    for r in [*answers, final]:
        assert 400 <= r.status_code < 500, (r.request.method, r.status_code, r.text)
        if r.request.method != "HEAD":
            assert "error" in r.json()
    assert _tree(server.data_dir) == before
