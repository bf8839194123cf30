"""The one body reader: bytes counted as they arrive, multipart parsed into our own temp
file. Real Starlette requests over an ASGI receive channel; nothing is faked but the
socket."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from starlette.requests import Request

from mediaplane.intake import ByteLimit, InvalidForm, UploadTooLarge, read_body, receive_form

B = "bnd"


def _request(chunks: Iterable[bytes], headers: dict[str, str]) -> Request:
    pending = list(chunks)
    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]

    async def receive() -> dict[str, Any]:
        body = pending.pop(0) if pending else b""
        return {"type": "http.request", "body": body, "more_body": bool(pending)}

    return Request({"type": "http", "method": "POST", "headers": raw, "path": "/"}, receive)


def _part(name: str, value: bytes, filename: str | None = None) -> bytes:
    disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
    return f"--{B}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + value + b"\r\n"


def _form(*parts: bytes) -> list[bytes]:
    body = b"".join(parts) + f"--{B}--\r\n".encode()
    return [body[i : i + 1000] for i in range(0, len(body), 1000)]  # as a socket would


def _files(directory: Path) -> list[Path]:
    return list(directory.iterdir())


MULTIPART = {"Content-Type": f"multipart/form-data; boundary={B}"}


def test_byte_limit_refuses_the_chunk_that_passes() -> None:
    limit = ByteLimit(10)
    assert list(limit.chunks([b"12345", b"12345"])) == [b"12345", b"12345"]
    limit = ByteLimit(10)
    got: list[bytes] = []
    with pytest.raises(UploadTooLarge, match="limit of 10 bytes"):
        got.extend(limit.chunks([b"12345", b"123456", b"never read"]))
    assert got == [b"12345"]
    with pytest.raises(UploadTooLarge):
        ByteLimit(10).declared("11")
    ByteLimit(10).declared("junk")  # not a length: the count decides


async def test_file_and_fields(tmp_path: Path) -> None:
    data = bytes(range(256)) * 40
    chunks = _form(_part("title", "Été".encode()), _part("file", data, "clip.mp4"))
    got = await receive_form(_request(chunks, MULTIPART), tmp_path, 1 << 20)
    assert got.path.read_bytes() == data and got.size == len(data)
    assert got.sha256 == hashlib.sha256(data).hexdigest()
    assert (got.filename, got.fields) == ("clip.mp4", {"title": "Été"})
    assert got.path.parent == tmp_path and got.path.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize(
    ("parts", "code"),
    [
        ([_part("title", b"x")], "missing_file"),
        ([_part("file", b"", "a.mp4")], "empty_file"),
        ([_part("file", b"1", "a"), _part("file", b"2", "b")], "too_many_files"),
        ([_part("title", b"x", "t.txt"), _part("file", b"1", "a")], "invalid_request"),
        ([_part("rights", b"x" * 20000), _part("file", b"1", "a")], "field_too_large"),
        ([_part(f"f{i}", b"x") for i in range(11)], "too_many_fields"),
    ],
)
async def test_refusals_leave_no_file(tmp_path: Path, parts: list[bytes], code: str) -> None:
    with pytest.raises(InvalidForm) as info:
        await receive_form(
            _request(_form(*parts), MULTIPART), tmp_path, 1 << 20, text_fields=("title", "rights")
        )
    assert info.value.code == code
    assert _files(tmp_path) == []


async def test_other_file_parts_are_dropped(tmp_path: Path) -> None:
    chunks = _form(_part("thumb", b"junk" * 100, "t.jpg"), _part("file", b"video", "v.mp4"))
    got = await receive_form(_request(chunks, MULTIPART), tmp_path, 1 << 20)
    assert got.path.read_bytes() == b"video" and got.fields == {}


async def test_no_boundary_and_broken_bodies(tmp_path: Path) -> None:
    with pytest.raises(InvalidForm, match="boundary"):
        await receive_form(_request([b""], {"Content-Type": "multipart/form-data"}), tmp_path, 9)
    with pytest.raises(InvalidForm) as info:
        await receive_form(_request([b"not multipart at all"], MULTIPART), tmp_path, 1 << 20)
    assert info.value.code == "invalid_multipart"
    assert _files(tmp_path) == []


@pytest.mark.parametrize("declared", [True, False])
async def test_file_past_the_limit(tmp_path: Path, declared: bool) -> None:
    """Counted as it arrives, with or without a Content-Length; the file is never written
    past the limit and is gone afterwards."""
    chunks = _form(_part("file", b"\0" * 5000, "big.mp4"))
    headers = dict(MULTIPART)
    if declared:
        headers["Content-Length"] = str(sum(map(len, chunks)))
    with pytest.raises(UploadTooLarge, match="limit of 4096 bytes"):
        await receive_form(_request(chunks, headers), tmp_path, 4096)
    assert _files(tmp_path) == []


async def test_read_body_is_bounded() -> None:
    assert await read_body(_request([b"ab", b"cd"], {}), 4) == b"abcd"
    with pytest.raises(UploadTooLarge):
        await read_body(_request([b"ab", b"cd", b"e"], {}), 4)
