from __future__ import annotations

import hashlib
import threading
import time
from typing import TYPE_CHECKING, Any

import structlog
from kombu.exceptions import KombuError
from pydantic import ValidationError
from sqlalchemy import func, select, text, update
from sqlalchemy.orm import aliased

from mediaplane.db import utcnow

from ._context import JobContext
from ._errors import InvalidTransition, PermanentJobError
from ._model import TRANSITIONS, Job, JobState

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from mediaplane.runtime import Runtime

    from ._table import JobPayload, JobSpec

log = structlog.get_logger("mediaplane.jobs")

HEARTBEAT_SECONDS = 5.0
TASK_NAME = "mediaplane.run_job"
#: A job claimed while its type runs at its concurrency limit is sent again this much later.
DEFER_SECONDS = 5.0
#: Publishing a message: retried twice at most (a dropped connection), never waited on
#: forever; a message that could not be sent is re-sent by the watchdog.
PUBLISH_RETRY_POLICY = {
    "max_retries": 2,
    "interval_start": 0,
    "interval_step": 0.5,
    "interval_max": 1.0,
}


def check_transition(old: JobState, new: JobState) -> None:
    if new not in TRANSITIONS[old]:
        raise InvalidTransition(f"job state {old} cannot become {new}")


def create_job(
    session: Session,
    payload: JobPayload,
    subject_id: str | None = None,
    *,
    job_id: str | None = None,
) -> Job:
    """Add a PENDING job of ``payload``'s type to ``session``; dispatch it with
    :func:`dispatch` after commit. (Its ``max_attempts`` is set when it is first claimed,
    from the job table.)

    :param job_id: a deterministic id makes creation idempotent: a second job with the same
        id fails with an IntegrityError at flush.
    """
    job = Job(
        type=payload.job_type,
        payload=payload.model_dump(mode="json"),
        subject_id=subject_id,
        state=JobState.PENDING,
    )
    if job_id is not None:
        job.id = job_id
    session.add(job)
    session.flush()
    return job


def queue_name(runtime: Runtime, type: str) -> str:
    return f"{runtime.settings.queue_namespace}.{runtime.jobs[type].queue}"


def dispatch(runtime: Runtime, job_id: str, type: str, countdown: float = 0) -> bool:
    """Send the job's message to the broker (call after the job row is committed).

    Bounded in time: a broker that refuses or stalls costs a few seconds, is logged, and
    returns False; the job stays undispatched and the watchdog sends it again later.
    """
    try:
        runtime.celery.send_task(
            TASK_NAME,
            args=[job_id],
            queue=queue_name(runtime, type),
            countdown=countdown or None,
            retry=True,
            retry_policy=PUBLISH_RETRY_POLICY,
        )
    except (KombuError, OSError) as exc:  # refused, timed out, dropped: the broker's state
        log.error("job.dispatch_failed", job_id=job_id, job_type=type, error=str(exc))
        return False
    with runtime.db.session() as s:
        s.execute(update(Job).where(Job.id == job_id).values(dispatched_at=utcnow()))
    log.info("job.dispatched", job_id=job_id, job_type=type)
    return True


class _AtLimit(Exception):
    """The job's type runs at its concurrency limit: the job stays PENDING for later."""

    def __init__(self, type: str) -> None:
        super().__init__(type)
        self.type = type


def _claim_lock(session: Session, type: str) -> None:
    """Serialise claims of one type on PostgreSQL, so the running count a claim checks
    cannot change under it. (SQLite runs one writer at a time: the UPDATE is enough.)"""
    if session.get_bind().dialect.name == "postgresql":
        digest = hashlib.blake2b(f"mediaplane.jobs.claim:{type}".encode(), digest_size=8)
        key = int.from_bytes(digest.digest(), "big", signed=True)
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


def _below_limit(session: Session, type: str, limit: int) -> Any:
    """A condition for the claiming UPDATE: fewer than ``limit`` jobs of ``type`` run."""
    _claim_lock(session, type)
    other = aliased(Job)
    running = (
        select(func.count())
        .select_from(other)
        .where(other.type == type, other.state == JobState.RUNNING)
        .scalar_subquery()
    )
    return running < limit


def _claim(runtime: Runtime, job_id: str, worker: str) -> Job | None:
    """Take a PENDING job for this attempt in one conditional UPDATE; None: not ours to run.

    :raises _AtLimit: its type already runs as many jobs as its concurrency allows.
    """
    now = utcnow()
    with runtime.db.session() as s:
        job = s.get(Job, job_id)
        if job is None or job.state is not JobState.PENDING:
            return None
        spec = runtime.jobs[job.type]
        check_transition(job.state, JobState.RUNNING)
        where = [Job.id == job_id, Job.state == JobState.PENDING, Job.attempts == job.attempts]
        if spec.concurrency is not None:
            where.append(_below_limit(s, job.type, spec.concurrency))
        res = s.execute(
            update(Job)
            .where(*where)
            .values(
                state=JobState.RUNNING,
                attempts=job.attempts + 1,
                max_attempts=spec.attempts,
                worker=worker,
                started_at=now,
                heartbeat_at=now,
                progress=0.0,
                error=None,
            )
        )
        claimed = res.rowcount == 1  # type: ignore[attr-defined]
    if not claimed and spec.concurrency is not None and _still_pending(runtime, job):
        raise _AtLimit(job.type)
    if not claimed:
        return None
    with runtime.db.session() as s:
        return s.get(Job, job_id)


def _still_pending(runtime: Runtime, job: Job) -> bool:
    """Whether nobody else claimed or finished ``job`` since it was read."""
    with runtime.db.session() as s:
        now = s.get(Job, job.id)
        return now is not None and now.state is JobState.PENDING and now.attempts == job.attempts


def finish(ctx: JobContext, state: JobState, error: str | None, started: float) -> bool:
    """End this attempt in ``state`` unless it lost the job meanwhile; whether it did."""
    check_transition(JobState.RUNNING, state)
    values: dict[str, Any] = {
        "state": state,
        "error": error,
        "run_seconds": time.monotonic() - started,
        "heartbeat_at": utcnow(),
    }
    if state is not JobState.PENDING:
        values["finished_at"] = utcnow()
    if state is JobState.SUCCEEDED:
        values["progress"] = 100.0
    with ctx.runtime.db.session() as s:
        res = s.execute(update(Job).where(ctx._owned()).values(**values))
        return bool(res.rowcount == 1)  # type: ignore[attr-defined]


def parse_payload(spec: JobSpec[Any], job: Job) -> JobPayload | None:
    """The job's payload as its type's model; None (logged) when the stored JSON does not
    fit it, which no retry can change."""
    try:
        payload: JobPayload = spec.payload.model_validate(job.payload)
    except ValidationError:
        log.error("job.payload_invalid", job_id=job.id, job_type=job.type, exc_info=True)
        return None
    return payload


class _Heartbeat(threading.Thread):
    def __init__(self, ctx: JobContext) -> None:
        super().__init__(daemon=True, name=f"heartbeat-{ctx.job_id}")
        self.ctx = ctx
        self.stopped = threading.Event()

    def run(self) -> None:
        # Several beats fit in one stall window, so one slow write never looks like a stall.
        every = min(HEARTBEAT_SECONDS, self.ctx.runtime.settings.job_stall_seconds / 6)
        while not self.stopped.wait(every):
            try:
                self.ctx.heartbeat()
            except Exception:  # a missed beat is retried; the watchdog tolerates several
                log.warning("job.heartbeat_failed", job_id=self.ctx.job_id, exc_info=True)


INTERNAL_ERROR = (
    "Processing failed repeatedly because of an internal error, not because of your file; "
    "please try again later."
)


def run_job(runtime: Runtime, job_id: str, worker: str) -> JobState | None:
    """Claim and run one job; returns its new state, or None when it was not ours to run
    (or its type is at its concurrency limit: then it is sent again a little later)."""
    try:
        job = _claim(runtime, job_id, worker)
    except _AtLimit as at_limit:
        log.info("job.deferred", job_id=job_id, countdown=DEFER_SECONDS)
        dispatch(runtime, job_id, at_limit.type, countdown=DEFER_SECONDS)
        return None
    if job is None:
        log.info("job.not_claimed", job_id=job_id)
        return None
    ctx = JobContext(runtime, job.id, job.type, job.subject_id, job.attempts)
    with structlog.contextvars.bound_contextvars(job_id=job.id, job_type=job.type):
        log.info("job.started", attempt=job.attempts)
        return _attempt(runtime.jobs[job.type], ctx, job)


def _attempt(spec: JobSpec[Any], ctx: JobContext, job: Job) -> JobState:
    """Run the handler once, then record the outcome: done, retry, or give up."""
    started = time.monotonic()
    payload = parse_payload(spec, job)
    if payload is None:
        finish(ctx, JobState.FAILED, f"the payload is not a {spec.payload.__name__}", started)
        return JobState.FAILED
    beat = _Heartbeat(ctx)
    beat.start()
    try:
        spec.handler(ctx, payload)
    except PermanentJobError as exc:
        log.info("job.failed", error=str(exc), permanent=True)
        if finish(ctx, JobState.FAILED, str(exc), started):
            spec.on_give_up(ctx, payload, str(exc), permanent=True)
        return JobState.FAILED
    except Exception as exc:
        # Not the input's fault (that is PermanentJobError): the host, a service or a
        # bug. Retried; the error (with a media tool's stderr tail) goes to the log.
        return _failed(spec, ctx, job, payload, exc, started)
    finally:
        beat.stopped.set()
    finish(ctx, JobState.SUCCEEDED, None, started)
    log.info("job.succeeded", seconds=round(time.monotonic() - started, 3))
    return JobState.SUCCEEDED


def _failed(
    spec: JobSpec[Any],
    ctx: JobContext,
    job: Job,
    payload: JobPayload,
    exc: Exception,
    started: float,
) -> JobState:
    retry = job.attempts < job.max_attempts
    error = f"{type(exc).__name__}: {exc}"
    log.exception(
        "job.error",
        attempt=job.attempts,
        max_attempts=job.max_attempts,
        will_retry=retry,
        error=error,
    )
    if not retry:
        if finish(ctx, JobState.FAILED, error, started):
            spec.on_give_up(ctx, payload, INTERNAL_ERROR, permanent=False)
        return JobState.FAILED
    if finish(ctx, JobState.PENDING, error, started):
        dispatch(ctx.runtime, job.id, job.type, countdown=2.0 * job.attempts)
    return JobState.PENDING


def jobs_by_state(session: Session) -> dict[JobState, int]:
    rows = session.execute(select(Job.state, func.count()).group_by(Job.state)).all()
    counts = {state: 0 for state in JobState}
    counts.update({state: n for state, n in rows})
    return counts
