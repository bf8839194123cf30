"""One watchdog per deployment: the lease row that lets one process sweep at a time, with
two runtimes (two processes' worth of connections) on one SQLite or PostgreSQL database."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import ClassVar

import pytest
from sqlalchemy import update

from mediaplane.config import Settings
from mediaplane.db import utcnow
from mediaplane.jobs import (
    Job,
    JobContext,
    JobLease,
    JobPayload,
    JobSpec,
    JobState,
    JobTable,
    Lease,
    Watchdog,
    create_job,
)
from mediaplane.jobs._service import _claim
from mediaplane.runtime import Runtime
from tests.support import migrated_runtime


class Beat(JobPayload):
    job_type: ClassVar[str] = "test.beat"


def _run(ctx: JobContext, payload: Beat) -> None:
    pass


def _give_up(ctx: JobContext, payload: Beat, message: str, *, permanent: bool) -> None:
    pass


def table(settings: Settings) -> JobTable:
    return JobTable([JobSpec(Beat, _run, _give_up, queue="test", attempts=3, timeout_seconds=60)])


@pytest.fixture(params=["sqlite", "postgres"])
def runtimes(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Runtime, Runtime]]:
    """Two runtimes on one database, as two web processes have."""
    with migrated_runtime(request.param, tmp_path, job_stall_seconds=30, job_table=table) as a:
        b = Runtime(a.settings, job_table=table)
        try:
            yield a, b
        finally:
            b.db.dispose()


def _expire(rt: Runtime, name: str) -> None:
    with rt.db.session() as s:
        s.execute(
            update(JobLease)
            .where(JobLease.name == name)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )


def test_one_holder_at_a_time(runtimes: tuple[Runtime, Runtime]) -> None:
    a, b = (Lease(rt.db, "test.lease", seconds=30) for rt in runtimes)
    assert a.holder != b.holder
    assert a.acquire() and not b.acquire()
    assert a.acquire() and not b.acquire()  # renewed by its holder, still refused to others
    a.release()
    assert b.acquire() and not a.acquire()  # released: taken at the next try
    _expire(runtimes[0], "test.lease")  # its holder stopped renewing (a dead process)
    assert a.acquire() and not b.acquire()


def test_concurrent_tries_have_one_winner(runtimes: tuple[Runtime, Runtime]) -> None:
    leases = [Lease(runtimes[i % 2].db, "test.race", seconds=30) for i in range(8)]
    won: list[bool] = []
    barrier = threading.Barrier(len(leases))

    def take(lease: Lease) -> None:
        barrier.wait()
        won.append(lease.acquire())

    threads = [threading.Thread(target=take, args=(lease,)) for lease in leases]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(won) == [False] * (len(leases) - 1) + [True]


def test_only_the_holder_sweeps(runtimes: tuple[Runtime, Runtime]) -> None:
    passes: list[str] = []
    first, second = (
        Watchdog(rt, passes=[lambda _, name=name: passes.append(name)])
        for rt, name in zip(runtimes, ("first", "second"), strict=True)
    )
    rt = runtimes[0]
    with rt.db.session() as s:
        job_id = create_job(s, Beat()).id
    assert _claim(rt, job_id, "dead-worker") is not None
    with rt.db.session() as s:
        s.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(heartbeat_at=utcnow() - timedelta(seconds=600))
        )
    for _ in range(3):  # every web process ticks; one sweeps
        assert first.tick()
        assert not second.tick()
    assert passes == ["first"] * 3
    with rt.db.session() as s:
        job = s.get_one(Job, job_id)
    assert (job.state, job.attempts) == (JobState.PENDING, 1)  # re-queued once, not twice
    first.release()  # `first` shuts down: `second` takes over at its next tick
    assert second.tick() and not first.tick()
    assert passes[-1] == "second"
