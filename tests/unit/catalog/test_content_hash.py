"""Exact duplicates: content hashes, looked up and relinked on delete, on real SQLite
(audio duplicates: tests/unit/pipeline/test_fingerprint.py)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from mediaplane.catalog import Asset, record_content_hash, sha256_file, source_key
from mediaplane.catalog._service import delete_asset, find_by_content_hash, list_assets
from mediaplane.runtime import Runtime
from tests.support import migrated_runtime


def test_sha256_file(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    data = b"x" * (3 << 20) + b"tail"  # more than one read chunk
    path.write_bytes(data)
    assert sha256_file(path) == hashlib.sha256(data).hexdigest()


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    with migrated_runtime("sqlite", tmp_path) as rt:
        yield rt


def _add(rt: Runtime, path: Path, title: str) -> str:
    """An asset whose source is ``path``, hashed as at ingest."""
    with rt.db.session() as s:
        asset = Asset(title=title, source_filename=path.name, tracks=[])
        s.add(asset)
        s.flush()
        asset.source_key = source_key(asset.id)
        rt.store.put_file(asset.source_key, path)
        record_content_hash(s, asset, sha256_file(path))
        return asset.id


def _asset(rt: Runtime, asset_id: str) -> Asset:
    with rt.db.session() as s:
        asset = s.get(Asset, asset_id)
        assert asset is not None
        s.expunge(asset)
        return asset


def test_content_hash_lookup_and_delete_relinks(runtime: Runtime, tmp_path: Path) -> None:
    clip = tmp_path / "a.mp4"
    clip.write_bytes(b"same bytes")
    first, second, third = (_add(runtime, clip, f"copy {i}") for i in range(3))
    digest = hashlib.sha256(b"same bytes").hexdigest()
    with runtime.db.session() as s:
        found = find_by_content_hash(s, digest)
        assert found is not None and found.id == first
        rows, total = list_assets(s, limit=10, page=1, content_hash=digest)
        assert total == 3 and {r.id for r in rows} == {first, second, third}
        assert list_assets(s, limit=10, page=1, content_hash="0" * 64) == ([], 0)
        with pytest.raises(ValueError, match="sha256"):
            record_content_hash(s, rows[0], "not-a-hash")
    assert _asset(runtime, second).duplicate_of == first
    assert _asset(runtime, third).duplicate_of == first
    delete_asset(runtime, first)
    assert _asset(runtime, second).duplicate_of is None  # now the oldest copy
    assert _asset(runtime, third).duplicate_of == second
