"""tus concatenation header parsing: ``Upload-Concat: partial`` and ``final;<url> ...``."""

from __future__ import annotations

import pytest

from mediaplane.http import ApiError
from mediaplane.ingest._tus import MAX_PARTIALS, parse_concat
from mediaplane.ingest._uploads import UploadConcat

PREFIXES = ("/api/v1/uploads", "/media/api/v1/uploads")
HOSTS = ("127.0.0.1:8080", "video.example.com")


def _parse(header: str | None) -> tuple[UploadConcat, list[str]] | None:
    return parse_concat(header, PREFIXES, HOSTS)


def test_no_header_is_an_ordinary_upload() -> None:
    assert _parse(None) is None


def test_partial() -> None:
    assert _parse("partial") == (UploadConcat.PARTIAL, [])
    assert _parse(" partial ") == (UploadConcat.PARTIAL, [])


def test_final_takes_absolute_and_relative_urls_of_this_server() -> None:
    header = (
        "final;http://127.0.0.1:8080/api/v1/uploads/abc123 /api/v1/uploads/def456"
        "  https://video.example.com/media/api/v1/uploads/z9"
    )
    assert _parse(header) == (UploadConcat.FINAL, ["abc123", "def456", "z9"])
    # Host names compare case-insensitively; order is kept, as the bytes' order.
    assert _parse("final;HTTP://VIDEO.EXAMPLE.COM/api/v1/uploads/b /api/v1/uploads/a") == (
        UploadConcat.FINAL,
        ["b", "a"],
    )


@pytest.mark.parametrize(
    "header",
    [
        "",
        "final",
        "final;",
        "final; ",
        "partial;x",
        "whole;/api/v1/uploads/a",
        "final;http://evil.example/api/v1/uploads/abc",  # another server
        "final;ftp://127.0.0.1:8080/api/v1/uploads/abc",
        "final;/api/v1/assets/abc",  # not an upload URL
        "final;/api/v1/uploads/abc/extra",
        "final;/api/v1/uploads/",
        "final;/api/v1/uploads/ABC",  # ids are lower-case
        "final;/api/v1/uploads/a%2Fb",
        "final;/api/v1/uploads/a?x=1",
        "final;/api/v1/uploads/a#frag",
        "final;/other/api/v1/uploads/a",
        "final;" + "/api/v1/uploads/" + "a" * 33,
        "final;" + " ".join(f"/api/v1/uploads/p{i}" for i in range(MAX_PARTIALS + 1)),
    ],
)
def test_bad_concat_is_400(header: str) -> None:
    with pytest.raises(ApiError) as info:
        _parse(header)
    assert info.value.status == 400
    assert info.value.code == "invalid_concat"
    assert "Upload-Concat" in info.value.message or "not an upload URL" in info.value.message
