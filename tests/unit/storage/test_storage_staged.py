"""Staged objects (resumable appends), run against every adapter (local directory, SeaweedFS S3)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mediaplane.storage import LocalStore, ObjectStore, StorageError
from mediaplane.storage._s3 import STAGED_PART_SIZE

BIG = os.urandom(STAGED_PART_SIZE + 3 * 1024 * 1024 + 17)  # more than one S3 part


def test_append_commit_round_trip(store: ObjectStore) -> None:
    w = store.open_staged("uploads/a", 0)
    for i in range(0, len(BIG), 1 << 20):
        w.write(BIG[i : i + (1 << 20)])
    assert w.close() == len(BIG)
    assert not store.exists("assets/x/source")
    assert list(store.list("")) == []  # staged bytes are invisible
    info = store.commit_staged("uploads/a", len(BIG), "assets/x/source")
    assert info.size == len(BIG)
    assert store.get_bytes("assets/x/source") == BIG
    assert [o.key for o in store.list("")] == ["assets/x/source"]
    with pytest.raises(StorageError):
        store.commit_staged("uploads/a", len(BIG), "assets/y/source")  # gone after commit


def test_resume_in_a_new_writer(store: ObjectStore) -> None:
    w = store.open_staged("uploads/b", 0)
    w.write(b"hello ")
    assert w.close() == 6
    w = store.open_staged("uploads/b", 6)
    w.write(b"world")
    assert w.close() == 11
    store.commit_staged("uploads/b", 11, "out")
    assert store.get_bytes("out") == b"hello world"


def test_reopen_drops_unrecorded_tail(store: ObjectStore) -> None:
    w = store.open_staged("uploads/c", 0)
    w.write(b"AAAA")
    w.close()
    w = store.open_staged("uploads/c", 4)
    w.write(b"garbage")  # written, but the caller never recorded it
    w.close()
    w = store.open_staged("uploads/c", 4)  # resume from the recorded offset
    w.write(b"BB")
    w.close()
    store.commit_staged("uploads/c", 6, "out")
    assert store.get_bytes("out") == b"AAAABB"


def test_abort_rolls_back_to_open_offset(store: ObjectStore) -> None:
    w = store.open_staged("uploads/d", 0)
    w.write(b"keep")
    w.close()
    w = store.open_staged("uploads/d", 4)
    w.write(b"bad chunk")
    w.close()
    w.abort()
    w = store.open_staged("uploads/d", 4)
    assert w.durable == 4
    w.close()
    store.commit_staged("uploads/d", 4, "out")
    assert store.get_bytes("out") == b"keep"


def test_missing_bytes_are_an_error(store: ObjectStore) -> None:
    with pytest.raises(StorageError):
        store.open_staged("uploads/none", 10)
    w = store.open_staged("uploads/e", 0)
    w.write(b"abc")
    w.close()
    with pytest.raises(StorageError):
        store.commit_staged("uploads/e", 5, "out")
    assert not store.exists("out")


def test_discard(store: ObjectStore) -> None:
    w = store.open_staged("uploads/f", 0)
    w.write(b"abc")
    w.close()
    store.discard_staged("uploads/f")
    store.discard_staged("uploads/f")  # idempotent
    with pytest.raises(StorageError):
        store.open_staged("uploads/f", 3)


def test_staged_names_follow_key_rules(store: ObjectStore) -> None:
    with pytest.raises(ValueError, match="segment"):
        store.open_staged("../escape", 0)


def _staged(store: ObjectStore, name: str, data: bytes, step: int = 1 << 20) -> None:
    w = store.open_staged(name, 0)
    for i in range(0, len(data), step):
        w.write(data[i : i + step])
    assert w.close() == len(data)


def test_concat_commit_round_trip(store: ObjectStore) -> None:
    """Three staged objects (one past an S3 part, one tiny, one mid-sized) become one."""
    parts = [BIG, b"tiny", os.urandom(6 * 1024 * 1024 + 1)]
    for i, data in enumerate(parts):
        _staged(store, f"uploads/p{i}", data)
    names = [(f"uploads/p{i}", len(d)) for i, d in enumerate(parts)]
    info = store.commit_staged_concat(names, "assets/c/source")
    assert info.size == sum(len(d) for d in parts)
    assert store.get_bytes("assets/c/source") == b"".join(parts)
    for name, _ in names:  # the sources are gone
        with pytest.raises(StorageError):
            store.open_staged(name, 1)
    assert [o.key for o in store.list("")] == ["assets/c/source"]


def test_concat_of_one_is_a_plain_commit(store: ObjectStore) -> None:
    _staged(store, "uploads/one", b"hello")
    assert store.commit_staged_concat([("uploads/one", 5)], "out").size == 5
    assert store.get_bytes("out") == b"hello"


def test_concat_with_missing_bytes_publishes_nothing(store: ObjectStore) -> None:
    _staged(store, "uploads/q0", b"abc")
    _staged(store, "uploads/q1", b"de")
    with pytest.raises(StorageError):
        store.commit_staged_concat([("uploads/q0", 3), ("uploads/q1", 5)], "out")
    with pytest.raises(StorageError):
        store.commit_staged_concat([("uploads/q0", 3), ("uploads/none", 1)], "out")
    with pytest.raises(StorageError):
        store.commit_staged_concat([], "out")
    assert not store.exists("out")
    # Nothing was lost: the right sizes still publish.
    store.commit_staged_concat([("uploads/q0", 3), ("uploads/q1", 2)], "out")
    assert store.get_bytes("out") == b"abcde"


def test_local_concat_resumes_after_a_crash(tmp_path: Path) -> None:
    """A crash mid-append leaves the first staged file with part of the second appended;
    the retry keeps what is whole and appends the rest again."""
    store = LocalStore(tmp_path / "store")
    a, b, c = os.urandom(1000), os.urandom(3000), os.urandom(500)
    for name, data in (("uploads/a", a), ("uploads/b", b), ("uploads/c", c)):
        _staged(store, name, data)
    head = tmp_path / "store" / "~staged" / "uploads" / "a"
    # What the interrupted first attempt left: the marker, b whole and 10 bytes of c.
    (tmp_path / "store" / "~staged" / "uploads" / "a.concat").touch()
    with head.open("ab") as f:
        f.write(b + c[:10])
    parts = [("uploads/a", 1000), ("uploads/b", 3000), ("uploads/c", 500)]
    store.commit_staged_concat(parts, "out")
    assert store.get_bytes("out") == a + b + c
    assert list((tmp_path / "store" / "~staged" / "uploads").iterdir()) == []


def test_local_concat_drops_an_unrecorded_tail_of_the_first(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    _staged(store, "uploads/a", b"AAAA" + b"garbage")  # 4 bytes recorded
    _staged(store, "uploads/b", b"BB")
    store.commit_staged_concat([("uploads/a", 4), ("uploads/b", 2)], "out")
    assert store.get_bytes("out") == b"AAAABB"
