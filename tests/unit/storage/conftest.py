"""Storage fixtures: stores to test, each adapter in turn (S3 on the session's SeaweedFS)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from mediaplane.storage import ObjectStore, open_store
from tests.seaweed import _AWS_VARS, SeaweedS3


@pytest.fixture
def s3_env(seaweed: SeaweedS3, monkeypatch: pytest.MonkeyPatch) -> SeaweedS3:
    """The server, with the standard AWS credential variables set to its identity only."""
    for var in _AWS_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", seaweed.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", seaweed.secret_key)
    return seaweed


@pytest.fixture
def s3_prefix() -> str:
    """A fresh key prefix, so every test sees an empty S3 store."""
    return f"t-{uuid.uuid4().hex[:12]}"


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.services)])
def store(request: pytest.FixtureRequest, tmp_path: Path, s3_prefix: str) -> ObjectStore:
    """Each adapter in turn, opened through open_store and empty."""
    if request.param == "local":
        return open_store((tmp_path / "store").as_uri())
    server: SeaweedS3 = request.getfixturevalue("s3_env")
    return open_store(server.url(s3_prefix))


@pytest.fixture
def boto(seaweed: SeaweedS3) -> Any:
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=seaweed.endpoint,
        region_name=seaweed.region,
        aws_access_key_id=seaweed.access_key,
        aws_secret_access_key=seaweed.secret_key,
    )
