"""Staged objects (resumable appends), run against every adapter (local directory, SeaweedFS S3)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from mediaplane.ingest._staging import PART_SIZE, FileStaging, PartStaging, Staging, staging_for
from mediaplane.storage import (
    InvalidKey,
    LocalStore,
    ObjectStore,
    S3Store,
    StorageError,
    open_store,
)

if TYPE_CHECKING:
    from tests.seaweed import SeaweedS3

BIG = os.urandom(PART_SIZE + 3 * 1024 * 1024 + 17)  # more than one S3 part


def test_staging_suits_the_store(store: ObjectStore) -> None:
    expected = PartStaging if isinstance(store, S3Store) else FileStaging
    assert isinstance(staging_for(store), expected)


def test_append_commit_round_trip(store: ObjectStore) -> None:
    staging = staging_for(store)
    w = staging.open("uploads/a", 0)
    for i in range(0, len(BIG), 1 << 20):
        w.write(BIG[i : i + (1 << 20)])
    assert w.close() == len(BIG)
    assert not store.exists("assets/x/source")
    assert list(store.list("")) == []  # staged bytes are invisible
    info = staging.commit("uploads/a", len(BIG), "assets/x/source")
    assert info.size == len(BIG)
    assert store.get_bytes("assets/x/source") == BIG
    assert [o.key for o in store.list("")] == ["assets/x/source"]
    with pytest.raises(StorageError):
        staging.commit("uploads/a", len(BIG), "assets/y/source")  # gone after commit


def test_resume_in_a_new_writer(store: ObjectStore) -> None:
    staging = staging_for(store)
    w = staging.open("uploads/b", 0)
    w.write(b"hello ")
    assert w.close() == 6
    w = staging.open("uploads/b", 6)
    w.write(b"world")
    assert w.close() == 11
    staging.commit("uploads/b", 11, "out")
    assert store.get_bytes("out") == b"hello world"


def test_reopen_drops_unrecorded_tail(store: ObjectStore) -> None:
    staging = staging_for(store)
    w = staging.open("uploads/c", 0)
    w.write(b"AAAA")
    w.close()
    w = staging.open("uploads/c", 4)
    w.write(b"garbage")  # written, but the caller never recorded it
    w.close()
    w = staging.open("uploads/c", 4)  # resume from the recorded offset
    w.write(b"BB")
    w.close()
    staging.commit("uploads/c", 6, "out")
    assert store.get_bytes("out") == b"AAAABB"


def test_abort_rolls_back_to_open_offset(store: ObjectStore) -> None:
    staging = staging_for(store)
    w = staging.open("uploads/d", 0)
    w.write(b"keep")
    w.close()
    w = staging.open("uploads/d", 4)
    w.write(b"bad chunk")
    w.close()
    w.abort()
    w = staging.open("uploads/d", 4)
    assert w.durable == 4
    w.close()
    staging.commit("uploads/d", 4, "out")
    assert store.get_bytes("out") == b"keep"


def test_missing_bytes_are_an_error(store: ObjectStore) -> None:
    staging = staging_for(store)
    with pytest.raises(StorageError):
        staging.open("uploads/none", 10)
    w = staging.open("uploads/e", 0)
    w.write(b"abc")
    w.close()
    with pytest.raises(StorageError):
        staging.commit("uploads/e", 5, "out")
    assert not store.exists("out")


def test_discard(store: ObjectStore) -> None:
    staging = staging_for(store)
    w = staging.open("uploads/f", 0)
    w.write(b"abc")
    w.close()
    staging.discard("uploads/f")
    staging.discard("uploads/f")  # idempotent
    with pytest.raises(StorageError):
        staging.open("uploads/f", 3)


def test_staged_names_follow_key_rules(store: ObjectStore) -> None:
    staging = staging_for(store)
    with pytest.raises(ValueError, match="segment"):
        staging.open("../escape", 0)


def _staged(staging: Staging, name: str, data: bytes, step: int = 1 << 20) -> None:
    w = staging.open(name, 0)
    for i in range(0, len(data), step):
        w.write(data[i : i + step])
    assert w.close() == len(data)


def test_concat_commit_round_trip(store: ObjectStore) -> None:
    staging = staging_for(store)
    """Three staged objects (one past an S3 part, one tiny, one mid-sized) become one."""
    parts = [BIG, b"tiny", os.urandom(6 * 1024 * 1024 + 1)]
    for i, data in enumerate(parts):
        _staged(staging, f"uploads/p{i}", data)
    names = [(f"uploads/p{i}", len(d)) for i, d in enumerate(parts)]
    info = staging.commit_concat(names, "assets/c/source")
    assert info.size == sum(len(d) for d in parts)
    assert store.get_bytes("assets/c/source") == b"".join(parts)
    for name, _ in names:  # the sources are gone
        with pytest.raises(StorageError):
            staging.open(name, 1)
    assert [o.key for o in store.list("")] == ["assets/c/source"]


def test_concat_of_one_is_a_plain_commit(store: ObjectStore) -> None:
    staging = staging_for(store)
    _staged(staging, "uploads/one", b"hello")
    assert staging.commit_concat([("uploads/one", 5)], "out").size == 5
    assert store.get_bytes("out") == b"hello"


def test_concat_with_missing_bytes_publishes_nothing(store: ObjectStore) -> None:
    staging = staging_for(store)
    _staged(staging, "uploads/q0", b"abc")
    _staged(staging, "uploads/q1", b"de")
    with pytest.raises(StorageError):
        staging.commit_concat([("uploads/q0", 3), ("uploads/q1", 5)], "out")
    with pytest.raises(StorageError):
        staging.commit_concat([("uploads/q0", 3), ("uploads/none", 1)], "out")
    with pytest.raises(StorageError):
        staging.commit_concat([], "out")
    assert not store.exists("out")
    # Nothing was lost: the right sizes still publish.
    staging.commit_concat([("uploads/q0", 3), ("uploads/q1", 2)], "out")
    assert store.get_bytes("out") == b"abcde"


def test_local_concat_resumes_after_a_crash(tmp_path: Path) -> None:
    """A crash mid-append leaves the first staged file with part of the second appended;
    the retry keeps what is whole and appends the rest again."""
    store = LocalStore(tmp_path / "store")
    staging = FileStaging(store)
    a, b, c = os.urandom(1000), os.urandom(3000), os.urandom(500)
    for name, data in (("uploads/a", a), ("uploads/b", b), ("uploads/c", c)):
        _staged(staging, name, data)
    head = tmp_path / "store" / "~staged" / "uploads" / "a"
    # What the interrupted first attempt left: the marker, b whole and 10 bytes of c.
    (tmp_path / "store" / "~staged" / "uploads" / "a.concat").touch()
    with head.open("ab") as f:
        f.write(b + c[:10])
    parts = [("uploads/a", 1000), ("uploads/b", 3000), ("uploads/c", 500)]
    staging.commit_concat(parts, "out")
    assert store.get_bytes("out") == a + b + c
    assert list((tmp_path / "store" / "~staged" / "uploads").iterdir()) == []


def test_local_concat_drops_an_unrecorded_tail_of_the_first(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    staging = FileStaging(store)
    _staged(staging, "uploads/a", b"AAAA" + b"garbage")  # 4 bytes recorded
    _staged(staging, "uploads/b", b"BB")
    staging.commit_concat([("uploads/a", 4), ("uploads/b", 2)], "out")
    assert store.get_bytes("out") == b"AAAABB"


# -- the local store's staging files: modes, names, links --------------------------------


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


@pytest.mark.parametrize(
    ("umask", "file_mode", "dir_mode"), [(0o000, 0o640, 0o750), (0o077, 0o600, 0o700)]
)
def test_staged_files_are_never_world_readable(
    tmp_path: Path, umask: int, file_mode: int, dir_mode: int
) -> None:
    """Staged files are 0640 at most and their directories 0750, whatever the umask lets
    through, and so is what a concatenation publishes."""
    local = LocalStore(tmp_path / "data" / "objects")
    staging = FileStaging(local)
    old = os.umask(umask)
    try:
        writer = staging.open("uploads/one", 0)
        writer.write(b"staged")
        writer.close()
        second = staging.open("uploads/two", 0)
        second.write(b"more")
        second.close()
        staging.commit_concat([("uploads/one", 6), ("uploads/two", 4)], "d/e/source")
        kept = staging.open("uploads/kept", 0)
        kept.write(b"waiting")
        kept.close()
    finally:
        os.umask(old)
    files = [p for p in (tmp_path / "data").rglob("*") if p.is_file()]
    dirs = [tmp_path / "data", *(p for p in (tmp_path / "data").rglob("*") if p.is_dir())]
    assert {str(p.relative_to(local.root)): _mode(p) for p in files} == {
        "d/e/source": file_mode,
        "~staged/uploads/kept": file_mode,
    }
    assert len(dirs) >= 6, dirs
    assert {str(p): _mode(p) for p in dirs} == {str(p): dir_mode for p in dirs}


@pytest.fixture
def local(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "root")


@pytest.mark.parametrize(
    "name",
    [
        "../escape",
        "uploads/../../escape",
        "/tmp/escape",
        "uploads/..",
        "uploads/%2e%2e/escape",
        "uploads\\..\\escape",
        "uploads/a\x00b",
        "~staged/x",
        "",
        "x" * 2000,
    ],
)
def test_hostile_staged_names_stay_out_of_the_filesystem(
    local: LocalStore, tmp_path: Path, name: str
) -> None:
    staging = FileStaging(local)
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    for call in (
        lambda: staging.open(name, 0),
        lambda: staging.commit(name, 0, "k"),
        lambda: staging.commit_concat([(name, 0), ("uploads/b", 0)], "k"),
        lambda: staging.discard(name),
    ):
        with pytest.raises(InvalidKey):
            call()
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before


def test_staging_symlink_out_of_the_staging_area_is_refused(
    local: LocalStore, tmp_path: Path
) -> None:
    """A link inside ~staged (an operator's mistake, or another process) does not carry a
    staged write, commit or discard outside the staging area."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim").write_bytes(b"keep me")
    (local.root / "~staged").mkdir(parents=True)
    (local.root / "~staged" / "uploads").symlink_to(outside, target_is_directory=True)
    staging = FileStaging(local)
    with pytest.raises(InvalidKey, match="outside the staging area"):
        staging.open("uploads/new", 0)
    with pytest.raises(InvalidKey):
        staging.open("uploads/victim", 0)
    with pytest.raises(InvalidKey):
        staging.discard("uploads/victim")
    with pytest.raises(InvalidKey):
        staging.commit("uploads/victim", 7, "stolen")
    assert sorted(p.name for p in outside.iterdir()) == ["victim"]
    assert (outside / "victim").read_bytes() == b"keep me"
    assert not local.exists("stolen")


# -- S3: part objects composed inside the server ------------------------------------------

MIB = 1 << 20


@pytest.fixture
def s3_store(s3_env: SeaweedS3, s3_prefix: str) -> S3Store:
    store = open_store(s3_env.url(s3_prefix))
    assert isinstance(store, S3Store)
    return store


def _write(staging: PartStaging, name: str, offset: int, data: bytes, step: int = MIB) -> None:
    w = staging.open(name, offset)
    for i in range(0, len(data), step):
        w.write(data[i : i + step])
    assert w.close() == offset + len(data)


@pytest.mark.services
def test_commit_copies_parts_inside_s3(s3_store: S3Store) -> None:
    staging = PartStaging(s3_store)
    """An upload interrupted once: parts of 8, 1, 8 and 2 MiB. The result is byte-exact
    and is a 3-part multipart object (copy, read-back part, copied tail)."""
    first, second = os.urandom(9 * MIB), os.urandom(10 * MIB)
    _write(staging, "uploads/mixed", 0, first)  # 8 MiB flushed + a 1 MiB tail on close
    _write(staging, "uploads/mixed", len(first), second)  # 8 MiB + 2 MiB
    sizes = [size for _, size, _ in staging.parts("uploads/mixed")]
    assert sizes == [PART_SIZE, MIB, PART_SIZE, 2 * MIB]
    info = staging.commit("uploads/mixed", len(first) + len(second), "assets/m/source")
    assert info.size == len(first) + len(second)
    assert info.etag.endswith("-3"), info.etag  # S3 counts the parts in the etag
    assert s3_store.get_bytes("assets/m/source") == first + second
    assert staging.parts("uploads/mixed") == ()


@pytest.mark.services
def test_commit_of_small_patches_and_of_a_small_file(s3_store: S3Store) -> None:
    staging = PartStaging(s3_store)
    data = os.urandom(11 * MIB + 5)
    w_offset = 0
    for i in range(0, len(data), 512 * 1024):  # one PATCH (writer) per 512 KiB
        _write(staging, "uploads/small", w_offset, data[i : i + 512 * 1024])
        w_offset = min(i + 512 * 1024, len(data))
    info = staging.commit("uploads/small", len(data), "small-patches")
    assert info.etag.endswith("-3"), info.etag  # 5 MiB, 5 MiB, 1 MiB + 5 bytes
    assert s3_store.get_bytes("small-patches") == data
    tiny = os.urandom(3 * MIB)  # under 5 MiB in two parts: read back in one PUT
    _write(staging, "uploads/tiny", 0, tiny[: 2 * MIB])
    _write(staging, "uploads/tiny", 2 * MIB, tiny[2 * MIB :])
    assert staging.commit("uploads/tiny", len(tiny), "tiny").size == len(tiny)
    assert s3_store.get_bytes("tiny") == tiny
