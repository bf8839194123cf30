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


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


@pytest.mark.parametrize(
    ("umask", "file_mode", "dir_mode"), [(0o000, 0o640, 0o750), (0o077, 0o600, 0o700)]
)
def test_files_are_never_world_readable(
    tmp_path: Path, umask: int, file_mode: int, dir_mode: int
) -> None:
    """Every file the store creates is 0640 at most and every directory 0750, whatever the
    umask lets through (0666/0777 before). (Staged uploads: tests/unit/ingest/test_staging.py.)"""
    local = LocalStore(tmp_path / "data" / "objects")
    src = tmp_path / "src"
    src.write_bytes(b"source")
    old = os.umask(umask)
    try:
        local.put_bytes("a/b/bytes", b"x")
        local.put_file("c/file", src)
        local.compose("d/e/source", [("a/b/bytes", 1), ("c/file", 6)])
        local.area("work").put_bytes("f/kept", b"waiting")
        local.download("a/b/bytes", tmp_path / "downloaded")
    finally:
        os.umask(old)
    files = [p for p in (tmp_path / "data").rglob("*") if p.is_file()]
    dirs = [tmp_path / "data", *(p for p in (tmp_path / "data").rglob("*") if p.is_dir())]
    assert len(files) == 4 and len(dirs) >= 8, (files, dirs)
    assert {str(p.relative_to(local.root)): _mode(p) for p in files} == {
        "a/b/bytes": file_mode,
        "c/file": file_mode,
        "d/e/source": file_mode,
        "~work/f/kept": file_mode,
    }
    assert {str(p): _mode(p) for p in dirs} == {str(p): dir_mode for p in dirs}
    assert _mode(tmp_path / "downloaded") == file_mode


def test_admin_token_file_is_owner_only(tmp_path: Path) -> None:
    from mediaplane.accounts import ensure_admin_token
    from mediaplane.config import Settings

    old = os.umask(0)
    try:
        token, created = ensure_admin_token(Settings(data_dir=tmp_path / "data", admin_token=None))
    finally:
        os.umask(old)
    assert created and token.startswith("mp_")
    assert _mode(tmp_path / "data" / "admin-token") == 0o600


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
