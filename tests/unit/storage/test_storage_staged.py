"""Staged objects (resumable appends), run against every adapter (local directory, SeaweedFS S3)."""

from __future__ import annotations

import os

import pytest

from mediaplane.storage import ObjectStore, StorageError
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
