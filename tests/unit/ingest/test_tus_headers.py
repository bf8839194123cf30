"""tus header parsing: Upload-Metadata pairs (base64 values, keys without values)."""

from __future__ import annotations

import base64

import pytest

from mediaplane.http import ApiError
from mediaplane.ingest._tus import parse_metadata


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_pairs_and_bare_keys() -> None:
    header = f"filename {_b64('clip ü.mp4')},is_confidential, title {_b64('A, b')}"
    assert parse_metadata(header) == {
        "filename": "clip ü.mp4",
        "is_confidential": None,
        "title": "A, b",
    }


def test_empty_header() -> None:
    assert parse_metadata(None) == {}
    assert parse_metadata("") == {}


@pytest.mark.parametrize(
    "header",
    [
        "filename not-base64!",
        f"filename {_b64('a')},filename {_b64('b')}",  # duplicate key
        f"a {_b64('x')} extra",
        ",",
        "k " + base64.b64encode(b"\xff\xfe").decode(),  # not UTF-8
        "k " + "A" * 9000,
    ],
)
def test_bad_metadata_is_400(header: str) -> None:
    with pytest.raises(ApiError) as info:
        parse_metadata(header)
    assert info.value.status == 400
    assert info.value.code == "invalid_metadata"
    assert info.value.headers == {"Tus-Resumable": "1.0.0"}
