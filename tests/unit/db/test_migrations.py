"""The migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

import mediaplane.accounts  # noqa: F401  (registers tables)
import mediaplane.catalog  # noqa: F401  (registers tables)
import mediaplane.ingest._uploads  # noqa: F401
import mediaplane.jobs  # noqa: F401
import mediaplane.library  # noqa: F401  (registers tables)
import mediaplane.live  # noqa: F401  (registers tables)
import mediaplane.protect  # noqa: F401  (registers tables)
import mediaplane.webhooks  # noqa: F401  (registers tables)
from mediaplane.db import Base, migrate
from mediaplane.db._engine import _normalise
from tests.support import postgres_database


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'm.sqlite'}"
        return
    u, drop = postgres_database()
    yield u
    drop()


def test_models_match_migrations(url: str) -> None:
    migrate(url)
    migrate(url)  # idempotent
    engine = create_engine(_normalise(url))
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    finally:
        engine.dispose()
    # SQLite cannot tell BIGINT from INTEGER apart after a batch copy; types are checked on PG.
    if url.startswith("sqlite"):
        diff = [d for d in diff if not (isinstance(d, list) and d and d[0][0] == "modify_type")]
    assert diff == []
