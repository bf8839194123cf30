"""The ObjectStore contract, run against every adapter (local directory, SeaweedFS S3)."""

from __future__ import annotations

import os
from datetime import UTC, timedelta
from pathlib import Path

import pytest

from mediaplane.storage import (
    InvalidKey,
    LocalStore,
    ObjectInfo,
    ObjectNotFound,
    ObjectStore,
    StorageError,
)

DATA = bytes(range(256)) * 4  # 1024 bytes, every offset distinguishable by position


async def collect(
    store: ObjectStore, key: str, start: int = 0, end: int | None = None, chunk_size: int = 1 << 20
) -> list[bytes]:
    return [chunk async for chunk in store.iter_range(key, start, end, chunk_size)]


def check_info(info: ObjectInfo, key: str, size: int) -> None:
    assert info.key == key
    assert info.size == size
    assert info.etag
    assert '"' not in info.etag
    assert info.modified.utcoffset() == timedelta(0)


def test_is_an_object_store(store: ObjectStore) -> None:
    assert isinstance(store, ObjectStore)
    assert store.url.startswith(("file://", "s3://"))


def test_put_bytes_round_trip(store: ObjectStore) -> None:
    info = store.put_bytes("videos/v1/master.m3u8", DATA)
    check_info(info, "videos/v1/master.m3u8", len(DATA))
    assert store.get_bytes("videos/v1/master.m3u8") == DATA
    assert store.stat("videos/v1/master.m3u8") == info
    assert store.exists("videos/v1/master.m3u8")


def test_put_file_round_trip_and_download(store: ObjectStore, tmp_path: Path) -> None:
    # Over obstore's 5 MiB part size, so the S3 adapter takes the multipart path.
    payload = os.urandom(11 * 1024 * 1024 + 123)
    src = tmp_path / "src.bin"
    src.write_bytes(payload)
    info = store.put_file("up/big.bin", src)
    check_info(info, "up/big.bin", len(payload))
    assert store.stat("up/big.bin") == info

    dest = tmp_path / "out" / "copy.bin"
    dest.parent.mkdir()
    dest.write_bytes(b"old contents")  # replaced, not appended to
    store.download("up/big.bin", dest)
    assert dest.read_bytes() == payload
    assert sorted(p.name for p in dest.parent.iterdir()) == ["copy.bin"]  # no temp left


def test_put_file_missing_source_is_the_callers_oserror(store: ObjectStore, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as exc_info:
        store.put_file("k", tmp_path / "nope.bin")
    assert not isinstance(exc_info.value, StorageError)
    assert not store.exists("k")


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (0, None, DATA),
        (10, 20, DATA[10:20]),
        (0, 1, DATA[:1]),
        (1000, None, DATA[1000:]),
        (1020, 4000, DATA[1020:]),  # end past the object is clamped
        (1023, 1024, DATA[1023:]),
        (1024, None, b""),  # start at the end
        (2000, 3000, b""),  # start past the end
        (5, 5, b""),  # empty range
    ],
)
def test_get_bytes_ranges(store: ObjectStore, start: int, end: int | None, expected: bytes) -> None:
    store.put_bytes("r/data", DATA)
    assert store.get_bytes("r/data", start, end) == expected


def test_bad_ranges_are_value_errors(store: ObjectStore) -> None:
    store.put_bytes("r/data", DATA)
    with pytest.raises(ValueError, match="negative"):
        store.get_bytes("r/data", -1)
    with pytest.raises(ValueError, match="before its start"):
        store.get_bytes("r/data", 10, 5)


def test_empty_object(store: ObjectStore) -> None:
    info = store.put_bytes("e/empty", b"")
    check_info(info, "e/empty", 0)
    assert store.get_bytes("e/empty") == b""
    assert store.get_bytes("e/empty", 0, 10) == b""


def test_overwrite_changes_etag(store: ObjectStore) -> None:
    first = store.put_bytes("o/k", b"one!")
    second = store.put_bytes("o/k", b"two!")  # same size, likely the same mtime tick
    assert second.etag != first.etag
    assert store.stat("o/k") == second
    assert second.modified >= first.modified - timedelta(seconds=1)
    assert store.get_bytes("o/k") == b"two!"


def test_missing_object(store: ObjectStore, tmp_path: Path) -> None:
    for call in (
        lambda: store.get_bytes("no/such"),
        lambda: store.get_bytes("no/such", 5, 10),
        lambda: store.get_bytes("no/such", 5, 5),
        lambda: store.stat("no/such"),
        lambda: store.download("no/such", tmp_path / "x"),
    ):
        with pytest.raises(ObjectNotFound):
            call()
    assert not store.exists("no/such")
    assert not (tmp_path / "x").exists()
    store.delete("no/such")  # not an error


def test_prefix_is_not_an_object(store: ObjectStore) -> None:
    store.put_bytes("dir/child", b"x")
    assert not store.exists("dir")
    with pytest.raises(ObjectNotFound):
        store.stat("dir")
    store.delete("dir")  # not an object, so nothing to do
    assert store.exists("dir/child")


def test_list(store: ObjectStore) -> None:
    keys = {"a/1": b"1", "a/2": b"22", "a/b/3": b"333", "ab/4": b"4444", "c": b""}
    for key, data in keys.items():
        store.put_bytes(key, data)
    under_a = sorted(store.list("a/"), key=lambda i: i.key)
    assert [i.key for i in under_a] == ["a/1", "a/2", "a/b/3"]
    assert [i.size for i in under_a] == [1, 2, 3]
    assert under_a[2] == store.stat("a/b/3")
    assert {i.key for i in store.list("")} == set(keys)
    assert {i.key for i in store.list("a/b/")} == {"a/b/3"}
    assert list(store.list("zz/")) == []


@pytest.mark.parametrize("prefix", ["a", "/a/", "a//", "../", "./"])
def test_list_rejects_bad_prefix(store: ObjectStore, prefix: str) -> None:
    with pytest.raises(InvalidKey):
        store.list(prefix)


def test_delete(store: ObjectStore) -> None:
    store.put_bytes("d/k", b"x")
    store.put_bytes("d/k2", b"y")
    store.delete("d/k")
    assert not store.exists("d/k")
    assert store.exists("d/k2")
    store.delete("d/k")


def test_delete_prefix(store: ObjectStore) -> None:
    for key in ("x/1", "x/y/2", "x/y/z/3", "xz/4", "y"):
        store.put_bytes(key, b"data")
    assert store.delete_prefix("x/") == 3
    assert {i.key for i in store.list("")} == {"xz/4", "y"}
    assert store.delete_prefix("x/") == 0
    assert store.delete_prefix("nothing/here/") == 0
    assert store.get_bytes("xz/4") == b"data"


@pytest.mark.parametrize("prefix", ["", "x", "/", "/x/", "x//", "../x/"])
def test_delete_prefix_rejects_bad_prefix(store: ObjectStore, prefix: str) -> None:
    store.put_bytes("x/1", b"data")
    with pytest.raises(InvalidKey):
        store.delete_prefix(prefix)
    assert store.exists("x/1")


def test_local_path(store: ObjectStore) -> None:
    store.put_bytes("lp/k", b"bytes")
    path = store.local_path("lp/k")
    if isinstance(store, LocalStore):
        assert path is not None
        assert path.read_bytes() == b"bytes"
        with pytest.raises(ObjectNotFound):
            store.local_path("lp/missing")
    else:
        assert path is None


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (0, None, DATA * 3),
        (100, 2500, (DATA * 3)[100:2500]),
        (3000, None, (DATA * 3)[3000:]),
        (3071, 9999, (DATA * 3)[3071:]),
        (3072, None, b""),
        (5000, 6000, b""),
        (7, 7, b""),
    ],
)
async def test_iter_range(store: ObjectStore, start: int, end: int | None, expected: bytes) -> None:
    store.put_bytes("it/k", DATA * 3)
    chunks = await collect(store, "it/k", start, end, chunk_size=1000)
    assert b"".join(chunks) == expected
    assert all(chunks)  # no empty chunks


async def test_iter_range_streams_in_chunks(store: ObjectStore) -> None:
    payload = os.urandom(3 * 1024 * 1024)
    store.put_bytes("it/big", payload)
    chunks = await collect(store, "it/big", chunk_size=256 * 1024)
    assert b"".join(chunks) == payload
    assert len(chunks) > 1


async def test_iter_range_empty_object(store: ObjectStore) -> None:
    store.put_bytes("it/empty", b"")
    assert await collect(store, "it/empty") == []


async def test_iter_range_missing(store: ObjectStore) -> None:
    with pytest.raises(ObjectNotFound):
        await collect(store, "it/missing")
    with pytest.raises(ObjectNotFound):
        await collect(store, "it/missing", 10, 20)


BAD_KEYS = [
    "",
    "/abs",
    "../x",
    "a/../../b",
    "a/..",
    "./a",
    "a/./b",
    "a//b",
    "a/",
    "a\\b",
    "a\x00b",
    "a b",
    "caf\u00e9",
    "a~b",
    "x" * 1025,
]


@pytest.mark.parametrize("key", BAD_KEYS, ids=repr)
def test_invalid_keys_are_rejected_everywhere(store: ObjectStore, key: str, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.write_bytes(b"x")
    for call in (
        lambda: store.put_bytes(key, b"x"),
        lambda: store.put_file(key, src),
        lambda: store.get_bytes(key),
        lambda: store.download(key, tmp_path / "dl"),
        lambda: store.stat(key),
        lambda: store.exists(key),
        lambda: store.delete(key),
        lambda: store.local_path(key),
    ):
        with pytest.raises(InvalidKey):
            call()
    assert list(store.list("")) == []


@pytest.mark.parametrize("key", ["../x", "/abs", "a/../../b"])
async def test_iter_range_rejects_invalid_keys(store: ObjectStore, key: str) -> None:
    with pytest.raises(InvalidKey):
        await collect(store, key)


def test_modified_is_utc(store: ObjectStore) -> None:
    info = store.put_bytes("t/k", b"x")
    assert info.modified.tzinfo is not None
    assert info.modified.astimezone(UTC) == info.modified


def test_compose(store: ObjectStore) -> None:
    store.put_bytes("c/a", b"abc")
    store.put_bytes("c/b", b"de")
    info = store.compose("c/out", [("c/a", 3), ("c/b", 2)])
    check_info(info, "c/out", 5)
    assert store.get_bytes("c/out") == b"abcde"
    assert store.get_bytes("c/a") == b"abc"  # the sources stay
    with pytest.raises(StorageError):
        store.compose("c/missing", [("c/a", 3), ("c/none", 1)])


def test_area_is_hidden_and_composes_into_its_store(store: ObjectStore) -> None:
    area = store.area("work")
    assert isinstance(area, ObjectStore)
    area.put_bytes("x/1", b"12")
    area.put_bytes("x/2", b"345")
    assert list(store.list("")) == []  # no listing of the store shows an area
    assert not store.exists("x/1")
    assert sorted(o.key for o in area.list("")) == ["x/1", "x/2"]
    info = store.compose("out", [("x/1", 2), ("x/2", 3)], source=area)
    assert info.size == 5
    assert store.get_bytes("out") == b"12345"
    assert store.compose("one", [("x/2", 3)], source=area).size == 3
    assert store.area("work").get_bytes("x/1") == b"12"
    with pytest.raises(InvalidKey):
        store.area("a/b")
    with pytest.raises(InvalidKey):
        store.area("~x")
