"""The upload limit is counted as bytes arrive, on every upload path, and a refused body
leaves nothing behind: a server with MEDIAPLANE_MAX_UPLOAD_BYTES = 10 MiB, on both backends,
sent chunked bodies (no Content-Length to trust)."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import Backend, Server, make_clip, start_server

LIMIT = 10 << 20
MIB = b"\0" * (1 << 20)
TUS = {"Tus-Resumable": "1.0.0"}
OCTETS = {"Content-Type": "application/offset+octet-stream"}
BOUNDARY = "mediaplane-test-boundary"


@pytest.fixture(scope="module")
def limited(backend: Backend, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = start_server(tmp_path_factory.mktemp("limited"), backend, max_upload_bytes=str(LIMIT))
    yield s
    s.stop()


@pytest.fixture(scope="module")
def clip() -> bytes:
    return make_clip("limit-1s.mp4", seconds=1, size="426x240").read_bytes()


def _multipart(file_chunks: Iterator[bytes], title: str = "t") -> Iterator[bytes]:
    """A multipart/form-data body as a generator: httpx sends it chunked."""
    yield (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="title"\r\n\r\n{title}\r\n'
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="a.mp4"\r\n'
        "Content-Type: video/mp4\r\n\r\n"
    ).encode()
    yield from file_chunks
    yield f"\r\n--{BOUNDARY}--\r\n".encode()


def _post_multipart(c: httpx.Client, body: Iterator[bytes]) -> httpx.Response:
    headers = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
    r = c.post("/api/v1/assets", content=body, headers=headers)
    assert r.request.headers.get("transfer-encoding") == "chunked"
    assert "content-length" not in r.request.headers
    return r


def _asset_ids(c: httpx.Client) -> set[str]:
    r = c.get("/api/v1/assets", params={"limit": 100})
    return {a["id"] for a in r.json()["data"]}


def _stored_asset_ids(server: Server) -> set[str]:
    """The asset ids that own any object in the server's store."""
    return {info.key.split("/")[1] for info in server.store().list("assets/")}


def _leftovers(server: Server) -> list[Path]:
    """Temp files of the server's own (multipart bodies and downloads land here)."""
    tmp = server.data_dir / "tmp"
    return sorted(tmp.rglob("*")) if tmp.exists() else []


def _too_large(r: httpx.Response) -> str:
    assert r.status_code == 413, r.text
    error = r.json()["error"]
    assert error["code"] == "payload_too_large"
    # The rest of the body was never read: the connection is not fit for another request.
    assert r.headers.get("connection") == "close"
    message: str = error["message"]
    return message


def test_chunked_multipart_past_the_limit_is_413_and_stores_nothing(
    limited: Server, clip: bytes
) -> None:
    with limited.client() as c:
        # A chunked upload under the limit is taken, and stays as it was.
        r = _post_multipart(c, _multipart(iter([clip[:1000], clip[1000:]])))
        assert r.status_code == 201, r.text
        kept = r.json()["data"]["id"]
        before = _asset_ids(c)
        r = _post_multipart(c, _multipart(MIB for _ in range(LIMIT // len(MIB) + 2)))
        assert str(LIMIT) in _too_large(r)
        assert _asset_ids(c) == before
    assert _stored_asset_ids(limited) <= before
    assert _leftovers(limited) == []
    assert limited.store().get_bytes(f"assets/{kept}/source") == clip


def test_file_part_is_counted_not_just_the_body(limited: Server) -> None:
    """A body just inside the limit plus the form overhead, whose file part alone passes
    the limit, is refused too."""
    with limited.client() as c:
        before = _asset_ids(c)
        r = _post_multipart(c, _multipart(iter([MIB] * (LIMIT // len(MIB)) + [b"\0" * 100])))
        _too_large(r)
        assert _asset_ids(c) == before
    assert _leftovers(limited) == []


def test_json_body_is_bounded(limited: Server) -> None:
    def body() -> Iterator[bytes]:
        yield b'{"input": {"url": "http://example.org/'
        for _ in range(64):
            yield b"a" * 8192
        yield b'"}}'

    with limited.client() as c:
        r = c.post("/api/v1/assets", content=body(), headers={"Content-Type": "application/json"})
    _too_large(r)


def _create_deferred(c: httpx.Client) -> str:
    name = base64.b64encode(b"a.mp4").decode()
    r = c.post(
        "/api/v1/uploads",
        headers={**TUS, "Upload-Defer-Length": "1", "Upload-Metadata": f"filename {name}"},
    )
    assert r.status_code == 201, r.text
    return str(r.headers["location"])


def _offset(c: httpx.Client, url: str) -> int:
    r = c.head(url, headers=TUS)
    assert r.status_code == 200, r.text
    return int(r.headers["upload-offset"])


def test_tus_chunked_patch_past_the_limit_keeps_only_what_was_stored(
    limited: Server, clip: bytes
) -> None:
    """A deferred-length upload bounded by the size limit: a chunked PATCH that passes it
    is refused with 413 and none of its bytes are kept, even those already written and
    recorded mid-request; what earlier PATCHes stored stays, and the upload completes."""
    half = len(clip) // 2
    with limited.client() as c:
        url = _create_deferred(c)
        h = {**TUS, **OCTETS}
        r = c.patch(url, headers={**h, "Upload-Offset": "0"}, content=clip[:half])
        assert r.status_code == 204, r.text

        def over() -> Iterator[bytes]:
            yield from [MIB] * 4
            # Past the server's record interval: the first 4 MiB batch is durable and its
            # offset recorded before the limit is reached.
            time.sleep(1.5)
            yield from [MIB] * 4
            yield from [MIB] * 4

        r = c.patch(url, headers={**h, "Upload-Offset": str(half)}, content=over())
        assert r.request.headers.get("transfer-encoding") == "chunked"
        _too_large(r)
        assert r.headers["tus-resumable"] == "1.0.0"
        assert _offset(c, url) == half
        r = c.patch(
            url,
            headers={**h, "Upload-Offset": str(half), "Upload-Length": str(len(clip))},
            content=clip[half:],
        )
        assert r.status_code == 204, r.text
        upload: dict[str, Any] = c.get(url).json()["data"]
    assert upload["status"] == "asset_created", upload
    assert limited.store().get_bytes(f"assets/{upload['asset_id']}/source") == clip


def test_tus_creation_with_upload_past_the_limit(limited: Server) -> None:
    """creation-with-upload, chunked, past Upload-Length: 413, nothing to resume."""
    with limited.client() as c:
        r = c.post(
            "/api/v1/uploads",
            headers={**TUS, **OCTETS, "Upload-Length": str(LIMIT)},
            content=iter([MIB] * (LIMIT // len(MIB) + 1)),
        )
        _too_large(r)
        assert "location" not in r.headers
