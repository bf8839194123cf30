from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import func, select, update

from mediaplane.db import utcnow

from ._model import TRANSITIONS, Job, JobState, JobType
from ._registry import JOB_SPECS

if TYPE_CHECKING:
    from celery import Celery
    from sqlalchemy.orm import Session

    from mediaplane.runtime import Runtime

log = structlog.get_logger("mediaplane.jobs")

HEARTBEAT_SECONDS = 5.0
PROGRESS_WRITE_SECONDS = 0.5
TASK_NAME = "mediaplane.run_job"


class JobError(Exception):
    """Root of job errors."""


class PermanentJobError(JobError):
    """The input can never succeed; the message is shown to the creator as is."""


class InvalidTransition(JobError):
    """A state change the job state machine does not allow."""


def check_transition(old: JobState, new: JobState) -> None:
    if new not in TRANSITIONS[old]:
        raise InvalidTransition(f"job state {old} cannot become {new}")


def create_job(
    session: Session,
    type: JobType,
    payload: dict[str, Any],
    subject_id: str | None = None,
    *,
    job_id: str | None = None,
) -> Job:
    """Add a PENDING job to ``session``; dispatch it with :func:`dispatch` after commit.
    (Its ``max_attempts`` is set when it is first claimed, from the job table and settings.)

    :param job_id: a deterministic id makes creation idempotent: a second job with the same
        id fails with an IntegrityError at flush.
    """
    job = Job(
        type=type,
        payload=payload,
        subject_id=subject_id,
        state=JobState.PENDING,
    )
    if job_id is not None:
        job.id = job_id
    session.add(job)
    session.flush()
    return job


def queue_name(runtime: Runtime, type: JobType) -> str:
    return f"{runtime.settings.queue_namespace}.{JOB_SPECS[type].queue}"


def dispatch(runtime: Runtime, job_id: str, type: JobType, countdown: float = 0) -> None:
    """Send the job's message to the broker (call after the job row is committed)."""
    celery: Celery = runtime.celery
    celery.send_task(
        TASK_NAME, args=[job_id], queue=queue_name(runtime, type), countdown=countdown or None
    )
    with runtime.db.session() as s:
        s.execute(update(Job).where(Job.id == job_id).values(dispatched_at=utcnow()))
    log.info("job.dispatched", job_id=job_id, job_type=str(type))


@dataclass
class JobContext:
    """What a job handler gets: its payload, the process runtime and a progress callback."""

    runtime: Runtime
    job_id: str
    type: JobType
    payload: dict[str, Any]
    subject_id: str | None
    attempt: int
    _last_write: float = field(default=0.0, repr=False)

    def _owned(self) -> Any:
        # Fencing: a stalled attempt that wakes up after being re-queued writes nothing.
        return (
            (Job.id == self.job_id)
            & (Job.attempts == self.attempt)
            & (Job.state == JobState.RUNNING)
        )

    def progress(self, percent: float, *, force: bool = False) -> None:
        """Record progress (0–100) and heartbeat; writes at most twice a second."""
        now = time.monotonic()
        if not force and now - self._last_write < PROGRESS_WRITE_SECONDS:
            return
        self._last_write = now
        with self.runtime.db.session() as s:
            s.execute(
                update(Job)
                .where(self._owned())
                .values(progress=max(0.0, min(100.0, percent)), heartbeat_at=utcnow())
            )

    def heartbeat(self) -> None:
        with self.runtime.db.session() as s:
            s.execute(update(Job).where(self._owned()).values(heartbeat_at=utcnow()))

    def still_owned(self) -> bool:
        with self.runtime.db.session() as s:
            return s.scalar(select(func.count()).select_from(Job).where(self._owned())) == 1


def _claim(runtime: Runtime, job_id: str, worker: str) -> Job | None:
    now = utcnow()
    with runtime.db.session() as s:
        job = s.get(Job, job_id)
        if job is None or job.state is not JobState.PENDING:
            return None
        check_transition(job.state, JobState.RUNNING)
        res = s.execute(
            update(Job)
            .where(Job.id == job_id, Job.state == JobState.PENDING, Job.attempts == job.attempts)
            .values(
                state=JobState.RUNNING,
                attempts=job.attempts + 1,
                max_attempts=JOB_SPECS[job.type].attempts(runtime.settings),
                worker=worker,
                started_at=now,
                heartbeat_at=now,
                progress=0.0,
                error=None,
            )
        )
        if res.rowcount != 1:  # type: ignore[attr-defined]
            return None
    with runtime.db.session() as s:
        return s.get(Job, job_id)


def _finish(ctx: JobContext, state: JobState, error: str | None, started: float) -> bool:
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


def run_job(runtime: Runtime, job_id: str, worker: str) -> JobState | None:
    """Claim and run one job; returns its new state, or None when it was not ours to run."""
    job = _claim(runtime, job_id, worker)
    if job is None:
        log.info("job.not_claimed", job_id=job_id)
        return None
    spec = JOB_SPECS[job.type]
    ctx = JobContext(runtime, job.id, job.type, dict(job.payload), job.subject_id, job.attempts)
    bound = structlog.contextvars.bound_contextvars(job_id=job.id, job_type=str(job.type))
    started = time.monotonic()
    beat = _Heartbeat(ctx)
    with bound:
        log.info("job.started", attempt=job.attempts)
        beat.start()
        try:
            spec.resolve("handler")(ctx)
        except PermanentJobError as exc:
            log.info("job.failed", error=str(exc), permanent=True)
            if _finish(ctx, JobState.FAILED, str(exc), started):
                spec.resolve("on_give_up")(ctx, str(exc), permanent=True)
            return JobState.FAILED
        except Exception as exc:
            # Not the input's fault (that is PermanentJobError): the host, a service or a
            # bug. Retried; the error (with a media tool's stderr tail) goes to the log.
            retry = job.attempts < job.max_attempts
            log.exception(
                "job.error",
                attempt=job.attempts,
                max_attempts=job.max_attempts,
                will_retry=retry,
                error=f"{type(exc).__name__}: {exc}",
            )
            if not retry:
                message = (
                    "Processing failed repeatedly because of an internal error, not because "
                    "of your file; please try again later."
                )
                if _finish(ctx, JobState.FAILED, f"{type(exc).__name__}: {exc}", started):
                    spec.resolve("on_give_up")(ctx, message, permanent=False)
                return JobState.FAILED
            if _finish(ctx, JobState.PENDING, f"{type(exc).__name__}: {exc}", started):
                dispatch(runtime, job.id, job.type, countdown=2.0 * job.attempts)
            return JobState.PENDING
        finally:
            beat.stopped.set()
        _finish(ctx, JobState.SUCCEEDED, None, started)
        log.info("job.succeeded", seconds=round(time.monotonic() - started, 3))
        return JobState.SUCCEEDED


def sweep(runtime: Runtime) -> list[str]:
    """Watchdog pass: re-queue stalled jobs, give up on exhausted ones, re-send lost messages.

    Returns the ids of the jobs it acted on.
    """
    settings = runtime.settings
    now = utcnow()
    stall = now - timedelta(seconds=settings.job_stall_seconds)
    acted: list[str] = []
    with runtime.db.session() as s:
        stalled = s.scalars(
            select(Job).where(Job.state == JobState.RUNNING, Job.heartbeat_at < stall)
        ).all()
        lost = s.scalars(
            select(Job).where(
                Job.state == JobState.PENDING,
                Job.created_at < now - timedelta(seconds=30),
                (Job.dispatched_at.is_(None))
                | (
                    Job.dispatched_at
                    < now - timedelta(seconds=max(1800, settings.job_stall_seconds))
                ),
            )
        ).all()
    for job in stalled:
        ctx = JobContext(runtime, job.id, job.type, dict(job.payload), job.subject_id, job.attempts)
        give_up = job.attempts >= job.max_attempts
        new_state = JobState.FAILED if give_up else JobState.PENDING
        message = f"The worker processing this job stopped responding ({job.attempts} attempts)."
        if not _finish(ctx, new_state, message, time.monotonic()):
            continue  # it beat or finished in the meantime
        acted.append(job.id)
        log.warning("job.stalled", job_id=job.id, attempts=job.attempts, gave_up=give_up)
        if give_up:
            JOB_SPECS[job.type].resolve("on_give_up")(
                ctx,
                "Processing stopped unexpectedly several times; please try again.",
                permanent=False,
            )
        else:
            dispatch(runtime, job.id, job.type)
    for job in lost:
        acted.append(job.id)
        log.warning("job.redispatch", job_id=job.id)
        dispatch(runtime, job.id, job.type)
    return acted


def jobs_by_state(session: Session) -> dict[JobState, int]:
    rows = session.execute(select(Job.state, func.count()).group_by(Job.state)).all()
    counts = {state: 0 for state in JobState}
    counts.update({state: n for state, n in rows})
    return counts
