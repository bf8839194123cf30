"""The job mechanism on real SQLite and PostgreSQL: atomic claims, retries, fencing, the
watchdog, per-type timeouts and concurrency limits — with a job table of this module's own
rows (the app's table is tested in test_table)."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar, Literal

import pytest
from sqlalchemy import update

from mediaplane.config import Settings
from mediaplane.db import utcnow
from mediaplane.jobs import (
    InvalidTransition,
    Job,
    JobContext,
    JobPayload,
    JobSpec,
    JobState,
    JobTable,
    PermanentJobError,
    UnknownJobType,
    create_job,
    run_job,
    sweep,
)
from mediaplane.jobs._service import DEFER_SECONDS, _AtLimit, _claim, check_transition
from mediaplane.runtime import Runtime
from tests.support import migrated_runtime

CALLS: list[tuple[str, Any]] = []


class Sample(JobPayload):
    """A test job; ``then`` says what its handler does."""

    job_type: ClassVar[str] = "test.sample"
    asset_id: str
    then: Literal["ok", "permanent", "flaky"] = "ok"


class Limited(Sample):
    job_type: ClassVar[str] = "test.limited"


class Quick(Sample):
    job_type: ClassVar[str] = "test.quick"


def run_sample(ctx: JobContext, payload: Sample) -> None:
    if payload.then == "permanent":
        raise PermanentJobError("the file is not a video")
    if payload.then == "flaky":
        raise ConnectionError("storage hiccup")
    ctx.progress(50, force=True)
    CALLS.append(("ok", payload))


def give_up(ctx: JobContext, payload: Sample, message: str, *, permanent: bool) -> None:
    CALLS.append(("give_up", (message, permanent)))


LIMIT = 2
TIMEOUT = 60.0


def table(settings: Settings) -> JobTable:
    """This module's job types: attempts from the settings, like the app's rows."""
    row: dict[str, Any] = {"queue": "test", "attempts": settings.job_max_attempts}
    return JobTable(
        [
            JobSpec(Sample, run_sample, give_up, timeout_seconds=3600, **row),
            JobSpec(Limited, run_sample, give_up, timeout_seconds=3600, concurrency=LIMIT, **row),
            JobSpec(Quick, run_sample, give_up, timeout_seconds=TIMEOUT, **row),
        ]
    )


@pytest.fixture(params=["sqlite", "postgres"])
def runtime(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Runtime]:
    with migrated_runtime(request.param, tmp_path, job_stall_seconds=30, job_table=table) as rt:
        CALLS.clear()
        yield rt


def _new(rt: Runtime, payload: JobPayload | None = None) -> str:
    with rt.db.session() as s:
        return create_job(s, payload or Sample(asset_id="a1"), subject_id="a1").id


def _get(rt: Runtime, job_id: str) -> Job:
    with rt.db.session() as s:
        job = s.get(Job, job_id)
        assert job is not None
        return job


def _set(rt: Runtime, job_id: str, **values: Any) -> None:
    with rt.db.session() as s:
        s.execute(update(Job).where(Job.id == job_id).values(**values))


def _sent(rt: Runtime) -> list[tuple[str, datetime | None]]:
    """(job id, eta) of each message in the embedded broker, oldest first."""
    con = sqlite3.connect(rt.settings.data_path / "broker.sqlite")
    try:
        rows = con.execute("SELECT payload FROM kombu_message ORDER BY id").fetchall()
    finally:
        con.close()
    out = []
    for (raw,) in rows:
        message = json.loads(raw)
        eta = message["headers"].get("eta")
        job_id = message["headers"]["argsrepr"].strip("[]()',\" ")
        out.append((job_id, datetime.fromisoformat(eta).astimezone(UTC) if eta else None))
    return out


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


def test_payload_is_stored_as_json_of_its_type(runtime: Runtime) -> None:
    job = _get(runtime, _new(runtime, Sample(asset_id="a1", then="flaky")))
    assert (job.type, job.payload) == ("test.sample", {"asset_id": "a1", "then": "flaky"})


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


def test_success(runtime: Runtime) -> None:
    job_id = _new(runtime)
    assert run_job(runtime, job_id, "w") is JobState.SUCCEEDED
    job = _get(runtime, job_id)
    assert (job.state, job.progress, job.attempts) == (JobState.SUCCEEDED, 100.0, 1)
    assert job.run_seconds is not None and job.finished_at is not None
    assert CALLS == [("ok", Sample(asset_id="a1"))]
    assert run_job(runtime, job_id, "w") is None  # a duplicate message does nothing


def test_permanent_failure_gives_up_at_once(runtime: Runtime) -> None:
    job_id = _new(runtime, Sample(asset_id="a1", then="permanent"))
    assert run_job(runtime, job_id, "w") is JobState.FAILED
    assert _get(runtime, job_id).error == "the file is not a video"
    assert CALLS == [("give_up", ("the file is not a video", True))]


def test_transient_failure_retries_then_gives_up(runtime: Runtime) -> None:
    job_id = _new(runtime, Sample(asset_id="a1", then="flaky"))
    for attempt in range(1, 3):
        assert run_job(runtime, job_id, "w") is JobState.PENDING
        job = _get(runtime, job_id)
        assert job.attempts == attempt and job.dispatched_at is not None
        assert "storage hiccup" in (job.error or "")
    assert run_job(runtime, job_id, "w") is JobState.FAILED
    assert len(CALLS) == 1 and CALLS[0][0] == "give_up"
    message, permanent = CALLS[0][1]
    assert not permanent and "internal error, not because of your file" in message


def test_a_payload_that_does_not_fit_fails_without_retry(runtime: Runtime) -> None:
    job_id = _new(runtime)
    _set(runtime, job_id, payload={"nothing": "here"})
    assert run_job(runtime, job_id, "w") is JobState.FAILED
    assert "not a Sample" in (_get(runtime, job_id).error or "")
    assert CALLS == []


def test_a_type_outside_the_table_is_refused(runtime: Runtime) -> None:
    job_id = _new(runtime)
    _set(runtime, job_id, type="test.unknown")
    with pytest.raises(UnknownJobType, match="not in this process's job table"):
        run_job(runtime, job_id, "w")
    assert _get(runtime, job_id).state is JobState.PENDING  # left for a process that knows it


def _stall(rt: Runtime, job_id: str) -> None:
    _set(rt, job_id, heartbeat_at=utcnow() - timedelta(seconds=600))


def test_watchdog_requeues_stalled_then_gives_up(runtime: Runtime) -> None:
    job_id = _new(runtime)
    for attempt in range(1, 4):
        claimed = _claim(runtime, job_id, "dead-worker")
        assert claimed is not None and claimed.attempts == attempt
        stale = JobContext(runtime, job_id, Sample.job_type, "a1", attempt)
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
    _set(runtime, job_id, created_at=utcnow() - timedelta(minutes=5))
    assert sweep(runtime) == [job_id]
    assert _get(runtime, job_id).dispatched_at is not None
    assert sweep(runtime) == []


def test_attempts_come_from_the_setting(tmp_path: Path) -> None:
    """MEDIAPLANE_JOB_MAX_ATTEMPTS bounds retries of job types that take it (all the app's)."""
    with migrated_runtime("sqlite", tmp_path, job_max_attempts=2, job_table=table) as rt:
        CALLS.clear()
        assert rt.jobs[Sample.job_type].attempts == 2
        job_id = _new(rt, Sample(asset_id="a1", then="flaky"))
        assert run_job(rt, job_id, "w") is JobState.PENDING
        assert _get(rt, job_id).max_attempts == 2
        assert run_job(rt, job_id, "w") is JobState.FAILED
        assert _get(rt, job_id).attempts == 2
        assert [c[0] for c in CALLS] == ["give_up"]


# -- timeouts: one attempt of a type runs at most its timeout_seconds ----------------------


def test_watchdog_requeues_an_attempt_past_its_timeout_then_gives_up(runtime: Runtime) -> None:
    job_id = _new(runtime, Quick(asset_id="a1"))
    for attempt in range(1, 4):
        assert _claim(runtime, job_id, "slow-worker") is not None
        stale = JobContext(runtime, job_id, Quick.job_type, "a1", attempt)
        # Alive (it just beat) but started longer ago than the type allows.
        _set(runtime, job_id, started_at=utcnow() - timedelta(seconds=TIMEOUT + 5))
        stale.heartbeat()
        assert sweep(runtime) == [job_id]
        job = _get(runtime, job_id)
        assert f"ran past its limit of {TIMEOUT:g} seconds" in (job.error or "")
        assert not stale.still_owned()  # the overdue attempt is fenced off
    assert _get(runtime, job_id).state is JobState.FAILED
    assert CALLS == [("give_up", ("Processing took longer than allowed several times; "
                                  "please try again later.", False))]  # fmt: skip


def test_timeouts_are_per_type(runtime: Runtime) -> None:
    quick, sample = _new(runtime, Quick(asset_id="a1")), _new(runtime)
    for job_id, seconds in ((quick, TIMEOUT - 20), (sample, TIMEOUT + 5)):
        assert _claim(runtime, job_id, "w") is not None
        _set(runtime, job_id, started_at=utcnow() - timedelta(seconds=seconds))
    assert sweep(runtime) == []  # within its limit / a type with an hour's limit
    assert {_get(runtime, j).state for j in (quick, sample)} == {JobState.RUNNING}


# -- concurrency: how many jobs of a type run at once across the deployment ----------------


def test_a_job_over_its_types_limit_waits_and_is_sent_again(runtime: Runtime) -> None:
    running = [_new(runtime, Limited(asset_id=f"r{i}")) for i in range(LIMIT)]
    for job_id in running:
        assert _claim(runtime, job_id, "w") is not None
    other_type = _new(runtime)  # other types are not held back
    assert run_job(runtime, other_type, "w") is JobState.SUCCEEDED
    waiting = _new(runtime, Limited(asset_id="a1"))
    before = utcnow()
    assert run_job(runtime, waiting, "w") is None
    job = _get(runtime, waiting)
    assert (job.state, job.attempts, job.dispatched_at is not None) == (JobState.PENDING, 0, True)
    etas = [eta for job_id, eta in _sent(runtime) if job_id == waiting]
    assert len(etas) == 1 and etas[0] is not None
    assert etas[0] >= before + timedelta(seconds=DEFER_SECONDS - 1)
    _set(runtime, running[0], state=JobState.SUCCEEDED)  # a slot frees up
    assert run_job(runtime, waiting, "w") is JobState.SUCCEEDED


def test_concurrent_claims_keep_to_the_limit(runtime: Runtime) -> None:
    jobs = [_new(runtime, Limited(asset_id=f"a{i}")) for i in range(6)]
    outcomes: list[str] = []
    barrier = threading.Barrier(len(jobs))

    def claim(job_id: str) -> None:
        barrier.wait()
        try:
            outcomes.append("claimed" if _claim(runtime, job_id, "w") else "lost")
        except _AtLimit:
            outcomes.append("at limit")

    threads = [threading.Thread(target=claim, args=(j,)) for j in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["at limit"] * (len(jobs) - LIMIT) + ["claimed"] * LIMIT
    assert sum(_get(runtime, j).state is JobState.RUNNING for j in jobs) == LIMIT
