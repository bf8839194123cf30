from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.seaweed import SeaweedS3, running_seaweed
from tests.support import (
    Backend,
    Server,
    embedded_backend,
    port_open,
    services_backend,
    skip_or_fail,
    start_server,
)


@pytest.fixture(scope="session")
def redis_conn() -> Iterator[Any]:
    """The machine's Redis (database 0); tests use keys under their own prefix."""
    import redis

    if not port_open("127.0.0.1", 6379):
        skip_or_fail("Redis is not listening on 127.0.0.1:6379")
    conn = redis.Redis.from_url("redis://127.0.0.1:6379/0", socket_timeout=5)
    yield conn
    conn.close()


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    """A real S3 endpoint (SeaweedFS) on 127.0.0.1 for the session."""
    with running_seaweed(tmp_path_factory.mktemp("seaweedfs")) as server:
        yield server


@pytest.fixture(scope="session", params=["sqlite", "postgres+rabbitmq+s3"])
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    """Every server test runs on the embedded defaults (SQLite, embedded broker, local disk)
    and again on the scale-out services (PostgreSQL, RabbitMQ, S3)."""
    if request.param == "sqlite":
        b = embedded_backend()
    else:
        b = services_backend(request.getfixturevalue("seaweed"))
    yield b
    for fn in b.cleanup:
        fn()


@pytest.fixture(scope="session")
def server(backend: Backend, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = start_server(tmp_path_factory.mktemp(f"server-{backend.name.replace('+', '-')}"), backend)
    yield s
    s.stop()


@pytest.fixture(scope="session")
def sqlite_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One embedded server for tests that need only one backend (browser, CLI)."""
    s = start_server(tmp_path_factory.mktemp("server-embedded"), embedded_backend())
    yield s
    s.stop()


@pytest.fixture(scope="session")
def rotating_keys_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One embedded server whose protected live streams rotate their key every 2 segments
    (the protected-live integration and browser tests share it)."""
    s = start_server(
        tmp_path_factory.mktemp("live-protected"),
        embedded_backend(),
        live_key_rotation_segments="2",
    )
    yield s
    s.stop()


@pytest.fixture(scope="session")
def media_dir() -> Path:
    from tests.support import MEDIA_CACHE

    MEDIA_CACHE.mkdir(parents=True, exist_ok=True)
    return MEDIA_CACHE


#: Folders whose tests start real servers, encode, play in Chromium or stream at real time.
SERIAL = ("tests/integration/", "tests/browser/")


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Under pytest-xdist (``scripts/test`` runs ``-n 2``) every test of :data:`SERIAL` goes
    to one worker, in the order a plain run has them (one server per backend, live tests
    never beside another server's encodes); the other worker runs tests/unit beside them,
    a module at a time (its module fixtures made once). Unit tests mostly wait (brokers,
    leases, timeouts): run alone they left a core idle. (xdist's own ``loadgroup`` marks
    do not group under pytest 9.2: it renames node ids the way pytest 8 kept them.)"""
    from xdist.scheduler import LoadScopeScheduling

    class ServersApart(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return "servers" if path.startswith(SERIAL) else path

    return ServersApart(config, log)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> object:
    """A failed test that used a server shows the tail of that server's log (CI keeps
    nothing else of a run)."""
    report = yield
    if report.failed:
        servers = [v for v in getattr(item, "funcargs", {}).values() if isinstance(v, Server)]
        for server in servers:
            lines = [line for line in server.log().splitlines() if '"level": "debug"' not in line]
            report.sections.append((f"server log {server.url}", "\n".join(lines[-40:])))
    return report
