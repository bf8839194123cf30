"""The job state machine on real SQLite and PostgreSQL: atomic claims, retries, watchdog."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from mediaplane.db import utcnow
from mediaplane.jobs import (
    JOB_SPECS,
    InvalidTransition,
    Job,
    JobContext,
    JobState,
    JobType,
    PermanentJobError,
    create_job,
    run_job,
    sweep,
)
from mediaplane.jobs._service import _claim, check_transition
from mediaplane.runtime import Runtime
from tests.support import migrated_runtime

CALLS: list[tuple[str, Any]] = []


def ok_handler(ctx: JobContext) -> None:
    ctx.progress(50, force=True)
    CALLS.append(("ok", ctx.payload))


def permanent_handler(ctx: JobContext) -> None:
    raise PermanentJobError("the file is not a video")


def flaky_handler(ctx: JobContext) -> None:
    raise ConnectionError("storage hiccup")


def give_up(ctx: JobContext, message: str, *, permanent: bool) -> None:
    CALLS.append(("give_up", (message, permanent)))


@pytest.fixture(params=["sqlite", "postgres"])
def runtime(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Runtime]:
    with migrated_runtime(request.param, tmp_path, job_stall_seconds=30) as rt:
        CALLS.clear()
        yield rt


@pytest.fixture
def spec(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Point the PROCESS_ASSET row of the job table at this module's handlers."""

    def use(handler: str) -> None:
        row = replace(
            JOB_SPECS[JobType.PROCESS_ASSET],
            handler=f"{__name__}:{handler}",
            on_give_up=f"{__name__}:give_up",
        )
        monkeypatch.setitem(JOB_SPECS, JobType.PROCESS_ASSET, row)

    return use


def _new(rt: Runtime) -> str:
    with rt.db.session() as s:
        return create_job(s, JobType.PROCESS_ASSET, {"asset_id": "a1"}, subject_id="a1").id


def _get(rt: Runtime, job_id: str) -> Job:
    with rt.db.session() as s:
        job = s.get(Job, job_id)
        assert job is not None
        return job


def test_transitions() -> None:
    check_transition(JobState.PENDING, JobState.RUNNING)
    check_transition(JobState.RUNNING, JobState.PENDING)
    for old, new in [
        (JobState.SUCCEEDED, JobState.RUNNING),
        (JobState.FAILED, JobState.PENDING),
        (JobState.PENDING, JobState.SUCCEEDED),
    ]:
        with pytest.raises(InvalidTransition):
            check_transition(old, new)


def test_claim_is_atomic(runtime: Runtime) -> None:
    job_id = _new(runtime)
    wins: list[Job | None] = []
    barrier = threading.Barrier(6)

    def claim(i: int) -> None:
        barrier.wait()
        wins.append(_claim(runtime, job_id, f"w{i}"))

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(w is not None for w in wins) == 1
    job = _get(runtime, job_id)
    assert job.state is JobState.RUNNING and job.attempts == 1


def test_success(runtime: Runtime, spec: Any) -> None:
    spec("ok_handler")
    job_id = _new(runtime)
    assert run_job(runtime, job_id, "w") is JobState.SUCCEEDED
    job = _get(runtime, job_id)
    assert (job.state, job.progress, job.attempts) == (JobState.SUCCEEDED, 100.0, 1)
    assert job.run_seconds is not None and job.finished_at is not None
    assert CALLS == [("ok", {"asset_id": "a1"})]
    assert run_job(runtime, job_id, "w") is None  # a duplicate message does nothing


def test_permanent_failure_gives_up_at_once(runtime: Runtime, spec: Any) -> None:
    spec("permanent_handler")
    job_id = _new(runtime)
    assert run_job(runtime, job_id, "w") is JobState.FAILED
    assert _get(runtime, job_id).error == "the file is not a video"
    assert CALLS == [("give_up", ("the file is not a video", True))]


def test_transient_failure_retries_then_gives_up(runtime: Runtime, spec: Any) -> None:
    spec("flaky_handler")
    job_id = _new(runtime)
    for attempt in range(1, 3):
        assert run_job(runtime, job_id, "w") is JobState.PENDING
        job = _get(runtime, job_id)
        assert job.attempts == attempt and job.dispatched_at is not None
        assert "storage hiccup" in (job.error or "")
    assert run_job(runtime, job_id, "w") is JobState.FAILED
    assert len(CALLS) == 1 and CALLS[0][0] == "give_up"
    message, permanent = CALLS[0][1]
    assert not permanent and "internal error, not because of your file" in message


def _stall(rt: Runtime, job_id: str) -> None:
    with rt.db.session() as s:
        s.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(heartbeat_at=utcnow() - timedelta(seconds=600))
        )


def test_watchdog_requeues_stalled_then_gives_up(runtime: Runtime, spec: Any) -> None:
    spec("ok_handler")
    job_id = _new(runtime)
    for attempt in range(1, 4):
        claimed = _claim(runtime, job_id, "dead-worker")
        assert claimed is not None and claimed.attempts == attempt
        stale = JobContext(runtime, job_id, JobType.PROCESS_ASSET, {}, "a1", attempt)
        _stall(runtime, job_id)
        assert sweep(runtime) == [job_id]
        # The stalled attempt is fenced off: it can no longer write progress.
        stale.progress(77, force=True)
        assert _get(runtime, job_id).progress != 77
        assert not stale.still_owned()
    job = _get(runtime, job_id)
    assert job.state is JobState.FAILED
    assert CALLS and CALLS[-1][0] == "give_up" and CALLS[-1][1][1] is False
    assert sweep(runtime) == []


def test_watchdog_leaves_live_jobs_alone(runtime: Runtime) -> None:
    job_id = _new(runtime)
    assert _claim(runtime, job_id, "w") is not None
    assert sweep(runtime) == []
    assert _get(runtime, job_id).state is JobState.RUNNING


def test_watchdog_resends_lost_messages(runtime: Runtime) -> None:
    job_id = _new(runtime)  # committed but never dispatched (a crash between the two)
    with runtime.db.session() as s:
        s.execute(
            update(Job).where(Job.id == job_id).values(created_at=utcnow() - timedelta(minutes=5))
        )
    assert sweep(runtime) == [job_id]
    assert _get(runtime, job_id).dispatched_at is not None
    assert sweep(runtime) == []


def test_attempts_come_from_the_setting(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """MEDIAPLANE_JOB_MAX_ATTEMPTS bounds retries of job types without their own bound."""
    assert JOB_SPECS[JobType.PROCESS_ASSET].max_attempts is None
    row = replace(
        JOB_SPECS[JobType.PROCESS_ASSET],
        handler=f"{__name__}:flaky_handler",
        on_give_up=f"{__name__}:give_up",
    )
    monkeypatch.setitem(JOB_SPECS, JobType.PROCESS_ASSET, row)
    with migrated_runtime("sqlite", tmp_path, job_max_attempts=2) as rt:
        CALLS.clear()
        job_id = _new(rt)
        assert run_job(rt, job_id, "w") is JobState.PENDING
        assert _get(rt, job_id).max_attempts == 2
        assert run_job(rt, job_id, "w") is JobState.FAILED
        assert _get(rt, job_id).attempts == 2
        assert [c[0] for c in CALLS] == ["give_up"]
