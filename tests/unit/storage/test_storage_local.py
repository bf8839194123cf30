"""LocalStore specifics: atomic writes, temp files, staying inside the root."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mediaplane.storage import InvalidKey, LocalStore, ObjectNotFound, StorageError


@pytest.fixture
def local(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "root")


def files_under(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file())


def test_objects_are_plain_files(local: LocalStore) -> None:
    local.put_bytes("a/b/c.ts", b"segment")
    assert (local.root / "a" / "b" / "c.ts").read_bytes() == b"segment"
    assert files_under(local.root) == ["a/b/c.ts"]  # no temp file left behind


def test_new_files_honour_the_umask(local: LocalStore) -> None:
    old = os.umask(0o022)
    try:
        local.put_bytes("k", b"x")
    finally:
        os.umask(old)
    assert (local.root / "k").stat().st_mode & 0o777 == 0o644


def test_crash_leftovers_are_invisible(local: LocalStore) -> None:
    local.put_bytes("v/real", b"x")
    (local.root / "v" / "~tmp.deadbeef").write_bytes(b"half written")
    assert [i.key for i in local.list("")] == ["v/real"]
    assert local.delete_prefix("v/") == 1
    assert not (local.root / "v").exists()


def test_failed_write_leaves_nothing(local: LocalStore, tmp_path: Path) -> None:
    local.put_bytes("k", b"old")

    class Boom(Exception):
        pass

    def fill(_out: object) -> None:
        raise Boom

    with pytest.raises(Boom):
        local._write("k", fill)
    assert local.get_bytes("k") == b"old"
    assert files_under(local.root) == ["k"]


def test_etag_is_cheap_and_tracks_metadata(local: LocalStore) -> None:
    info = local.put_bytes("k", b"abc")
    assert local.stat("k").etag == info.etag
    path = local.root / "k"
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert local.stat("k").etag != info.etag


def test_dotdot_keys_never_touch_the_filesystem(local: LocalStore, tmp_path: Path) -> None:
    before = files_under(tmp_path)
    for key in ("../escape", "a/../../escape", "/tmp/escape", "a/../b"):
        with pytest.raises(InvalidKey):
            local.put_bytes(key, b"x")
    assert files_under(tmp_path) == before
    assert not (tmp_path / "escape").exists()


def test_symlink_out_of_root_is_refused(local: LocalStore, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"secret")
    local.root.mkdir(parents=True)
    (local.root / "link").symlink_to(outside, target_is_directory=True)
    with pytest.raises(InvalidKey, match="outside the store root"):
        local.get_bytes("link/secret")
    with pytest.raises(InvalidKey):
        local.put_bytes("link/new", b"x")
    with pytest.raises(InvalidKey):
        local.delete_prefix("link/")
    assert not (outside / "new").exists()
    assert (outside / "secret").exists()


def test_key_and_prefix_conflict_is_a_storage_error(local: LocalStore) -> None:
    local.put_bytes("a/b", b"x")
    with pytest.raises(StorageError):
        local.put_bytes("a", b"x")  # 'a' is a directory here
    local.put_bytes("f", b"x")
    with pytest.raises(StorageError):
        local.put_bytes("f/g", b"x")  # 'f' is a file
    with pytest.raises(ObjectNotFound):
        local.stat("f/g")


def test_missing_root_reads_as_empty(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "not" / "yet")
    assert list(store.list("")) == []
    assert not store.exists("k")
    assert store.delete_prefix("p/") == 0
    store.put_bytes("k", b"x")  # the root is created on first write
    assert store.get_bytes("k") == b"x"


def test_list_reports_the_same_info_as_stat(local: LocalStore) -> None:
    local.put_bytes("p/one", b"1")
    local.put_bytes("p/q/two", b"22")
    assert sorted(local.list("p/"), key=lambda i: i.key) == [
        local.stat("p/one"),
        local.stat("p/q/two"),
    ]
