from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.orm import Session

from mediaplane.runtime import Runtime
from tests.support import migrated_runtime


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def rt(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Runtime]:
    """A runtime on a fresh, migrated database of each backend (one per test module: tests
    use addresses of their own)."""
    with migrated_runtime(request.param, tmp_path_factory.mktemp("accounts")) as runtime:
        yield runtime


@pytest.fixture
def session(rt: Runtime) -> Iterator[Session]:
    with rt.db.session() as s:
        yield s
