"""Key rules, the public surface and URL → adapter selection."""

from __future__ import annotations

from pathlib import Path

import pytest

import mediaplane.storage as storage
from mediaplane.storage import (
    InvalidKey,
    LocalStore,
    S3Store,
    StorageError,
    open_store,
    validate_key,
)


def test_all_is_complete() -> None:
    public = {
        name
        for name, value in vars(storage).items()
        if not name.startswith("_")
        and getattr(value, "__module__", "").startswith(storage.__name__)
    }
    assert public <= set(storage.__all__)
    assert all(hasattr(storage, name) for name in storage.__all__)


def test_error_tree() -> None:
    assert issubclass(storage.ObjectNotFound, StorageError)
    assert issubclass(InvalidKey, StorageError)
    assert issubclass(InvalidKey, ValueError)


@pytest.mark.parametrize(
    "key",
    ["a", "a/b.c", "videos/0123/hls/seg_00001.ts", "k=v/x-y_z.m4s", ".hidden", "a/..b", "x" * 1024],
)
def test_valid_keys(key: str) -> None:
    assert validate_key(key) == key


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("", "empty"),
        ("/abs", "starts with '/'"),
        ("../x", "'..' segment"),
        ("a/../../b", "'..' segment"),
        ("a/.", "'.' segment"),
        ("a//b", "empty segment"),
        ("a/", "empty segment"),
        ("a\\b", "backslash"),
        ("a\x00b", "NUL"),
        ("a b", "outside"),
        ("a?b", "outside"),
        ("x" * 1025, "1025 characters"),
    ],
)
def test_invalid_keys(key: str, reason: str) -> None:
    with pytest.raises(InvalidKey, match=reason):
        validate_key(key)


def test_open_store_file_url(tmp_path: Path) -> None:
    store = open_store((tmp_path / "media").as_uri())
    assert isinstance(store, LocalStore)
    assert store.root == tmp_path.resolve() / "media"
    assert store.url == (tmp_path.resolve() / "media").as_uri()


def test_open_store_plain_path(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "media"))
    assert isinstance(store, LocalStore)
    assert store.root == tmp_path.resolve() / "media"


def test_open_store_s3_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    url = "s3://media/tenant/a?endpoint=http://127.0.0.1:1&region=us-east-1"
    store = open_store(url)
    assert isinstance(store, S3Store)
    assert (store.bucket, store.prefix, store.url) == ("media", "tenant/a", url)
    assert store.local_path("any/key") is None
    bare = open_store("s3://media")
    assert isinstance(bare, S3Store)
    assert (bare.bucket, bare.prefix) == ("media", "")


@pytest.mark.parametrize(
    "url",
    [
        "",
        "ftp://host/x",
        "s3://",
        "s3://user:secret@bucket/x",
        "s3://bucket?endpoint=http://a&endpoint=http://b",
        "s3://bucket?color=blue",
        "s3://bucket/a//b",
        "file://otherhost/x",
    ],
)
def test_open_store_rejects_bad_urls(url: str) -> None:
    with pytest.raises(StorageError):
        open_store(url)
