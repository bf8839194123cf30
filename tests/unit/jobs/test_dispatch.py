"""Dispatch is bounded in time: a broker that refuses connections, or accepts them and never
answers (a CI run once hung there), costs seconds; the job is left for the watchdog."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from mediaplane.config import Settings
from mediaplane.jobs import (
    Job,
    JobContext,
    JobPayload,
    JobSpec,
    JobTable,
    UnknownJobType,
    _celery,
    create_job,
    dispatch,
)
from tests.support import migrated_runtime

#: A refused connection is retried twice (0.5 s, 1 s); a silent broker times out once.
BOUND_SECONDS = 8.0


class Ping(JobPayload):
    job_type: ClassVar[str] = "test.ping"


def _run(ctx: JobContext, payload: Ping) -> None:
    pass


def _give_up(ctx: JobContext, payload: Ping, message: str, *, permanent: bool) -> None:
    pass


def table(settings: Settings) -> JobTable:
    return JobTable([JobSpec(Ping, _run, _give_up, queue="test", attempts=3, timeout_seconds=60)])


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A loopback port that accepts connections and never says a word."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        yield int(s.getsockname()[1])


@pytest.fixture(autouse=True)
def short_broker_timeouts(monkeypatch: pytest.MonkeyPatch) -> None:
    # The same mechanism with the shipped timeouts (4 s, 10 s) scaled down to keep this fast.
    monkeypatch.setattr(_celery, "BROKER_CONNECT_SECONDS", 2.0)
    monkeypatch.setattr(_celery, "BROKER_REPLY_SECONDS", 2.0)


def _dispatch_to(tmp_path: Path, broker_url: str) -> tuple[bool, float, Job]:
    with migrated_runtime("sqlite", tmp_path, broker_url=broker_url, job_table=table) as rt:
        with rt.db.session() as s:
            job_id = create_job(s, Ping()).id
        started = time.monotonic()
        sent = dispatch(rt, job_id, Ping.job_type)
        took = time.monotonic() - started
        with rt.db.session() as s:
            return sent, took, s.get_one(Job, job_id)


@pytest.mark.parametrize("scheme", ["amqp", "redis"])
def test_an_unreachable_broker_fails_fast(tmp_path: Path, closed_port: int, scheme: str) -> None:
    sent, took, job = _dispatch_to(tmp_path, f"{scheme}://127.0.0.1:{closed_port}/")
    assert not sent and took < BOUND_SECONDS, took
    assert job.dispatched_at is None  # the watchdog sends it again (test_jobs: lost messages)


@pytest.mark.parametrize("scheme", ["amqp", "redis"])
def test_a_silent_broker_times_out(tmp_path: Path, silent_port: int, scheme: str) -> None:
    sent, took, job = _dispatch_to(tmp_path, f"{scheme}://127.0.0.1:{silent_port}/")
    assert not sent and took < BOUND_SECONDS, took
    assert job.dispatched_at is None


def test_the_shipped_bounds_reach_the_broker_connection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.undo()
    redis = Settings(data_dir=tmp_path, broker_url="redis://127.0.0.1:6379/0")
    conf = _celery.make_celery(redis, lambda: None).conf
    assert conf.broker_connection_timeout == _celery.BROKER_CONNECT_SECONDS
    assert conf.broker_transport_options == {
        "socket_connect_timeout": _celery.BROKER_CONNECT_SECONDS,
        "socket_timeout": _celery.BROKER_REPLY_SECONDS,
    }
    embedded = _celery.make_celery(Settings(data_dir=tmp_path), lambda: None).conf
    assert embedded.broker_transport_options == {}  # the SQL transport takes none


def test_dispatching_a_type_outside_the_table_is_an_error(tmp_path: Path) -> None:
    with migrated_runtime("sqlite", tmp_path, job_table=table) as rt:
        with pytest.raises(UnknownJobType):
            dispatch(rt, "0" * 32, "test.unknown")
