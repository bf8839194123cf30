"""S3Store against a real SeaweedFS server: credentials, prefixes, multipart."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from mediaplane.storage import ObjectNotFound, S3Store, StorageError, open_store

if TYPE_CHECKING:
    from tests.seaweed import SeaweedS3

pytestmark = pytest.mark.services


def test_credentials_come_from_the_environment(
    s3_env: SeaweedS3, s3_prefix: str, boto: Any
) -> None:
    seaweed = s3_env
    store = open_store(seaweed.url(s3_prefix))
    store.put_bytes("videos/a.ts", b"payload")
    # The store prefix is a real key prefix in the bucket.
    body = boto.get_object(Bucket=seaweed.bucket, Key=f"{s3_prefix}/videos/a.ts")["Body"]
    assert body.read() == b"payload"
    assert store.delete_prefix("videos/") == 1
    assert boto.list_objects_v2(Bucket=seaweed.bucket, Prefix=s3_prefix).get("KeyCount") == 0


def test_etag_matches_the_servers(s3_env: SeaweedS3, s3_prefix: str, boto: Any) -> None:
    seaweed = s3_env
    store = open_store(seaweed.url(s3_prefix))
    info = store.put_bytes("k", b"abc")
    head = boto.head_object(Bucket=seaweed.bucket, Key=f"{s3_prefix}/k")
    assert info.etag == head["ETag"].strip('"')


def test_multipart_upload_of_a_big_file(s3_env: SeaweedS3, s3_prefix: str, tmp_path: Path) -> None:
    seaweed = s3_env
    store = open_store(seaweed.url(s3_prefix))
    src = tmp_path / "big"
    src.write_bytes(os.urandom(12 * 1024 * 1024))
    info = store.put_file("big", src)
    # S3 marks a multipart object's etag with the number of parts.
    assert info.etag.endswith("-3")
    assert (
        store.get_bytes("big", 5 * 1024 * 1024 - 2, 5 * 1024 * 1024 + 2)
        == (src.read_bytes()[5 * 1024 * 1024 - 2 : 5 * 1024 * 1024 + 2])
    )


def wrong_store(seaweed: SeaweedS3, prefix: str, secret: str = "not-the-secret") -> S3Store:
    return S3Store(
        seaweed.bucket,
        prefix,
        endpoint=seaweed.endpoint,
        region=seaweed.region,
        access_key_id=seaweed.access_key,
        secret_access_key=secret,
    )


def test_wrong_credentials_are_storage_errors(
    s3_env: SeaweedS3, s3_prefix: str, tmp_path: Path
) -> None:
    seaweed = s3_env
    open_store(seaweed.url(s3_prefix)).put_bytes("k", b"x")
    store = wrong_store(seaweed, s3_prefix)
    src = tmp_path / "src"
    src.write_bytes(b"x")
    for call in (
        lambda: store.put_bytes("k", b"y"),
        lambda: store.put_file("k", src),
        lambda: store.get_bytes("k"),
        lambda: store.get_bytes("k", 1, 2),
        lambda: store.stat("k"),
        lambda: store.exists("k"),  # must not pass for "missing"
        lambda: store.delete("k"),
        lambda: store.delete_prefix("p/"),
        lambda: list(store.list("")),
        lambda: store.download("k", tmp_path / "dl"),
    ):
        with pytest.raises(StorageError) as exc_info:
            call()
        assert not isinstance(exc_info.value, ObjectNotFound)
    with pytest.raises(StorageError, match="AWS_SECRET_ACCESS_KEY"):
        store.stat("k")
    assert not (tmp_path / "dl").exists()


async def test_wrong_credentials_in_iter_range(seaweed: SeaweedS3, s3_prefix: str) -> None:
    store = wrong_store(seaweed, s3_prefix)
    with pytest.raises(StorageError) as exc_info:
        _ = [chunk async for chunk in store.iter_range("k", 0, 10)]
    assert not isinstance(exc_info.value, ObjectNotFound)


def test_unknown_identity_is_a_storage_error(seaweed: SeaweedS3, s3_prefix: str) -> None:
    store = S3Store(
        seaweed.bucket,
        s3_prefix,
        endpoint=seaweed.endpoint,
        region=seaweed.region,
        access_key_id="nobody",
        secret_access_key="nothing",
    )
    with pytest.raises(StorageError):
        store.put_bytes("k", b"x")
