"""Ingest fixtures: the storage tests' stores (each adapter in turn, S3 on SeaweedFS)."""

from __future__ import annotations

from tests.unit.storage.conftest import boto, s3_env, s3_prefix, store

__all__ = ["boto", "s3_env", "s3_prefix", "store"]
