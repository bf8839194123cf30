"""The watchdog: re-queues stalled and overdue jobs, re-sends lost messages — in one process
of the deployment at a time, the holder of a lease row in the database."""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import and_, delete, false, or_, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from mediaplane.db import utcnow

from ._context import JobContext
from ._model import Job, JobLease, JobState
from ._service import dispatch, finish, parse_payload

if TYPE_CHECKING:
    from datetime import datetime

    from mediaplane.db import Database
    from mediaplane.runtime import Runtime

    from ._table import JobTable

log = structlog.get_logger("mediaplane.jobs")

#: A committed job with no message sent for this long is sent again.
UNDISPATCHED_SECONDS = 30
#: A sent message not picked up for this long (or a stall window, if longer) is sent again.
UNCLAIMED_SECONDS = 1800
STALLED = "Processing stopped unexpectedly several times; please try again."
OVERDUE = "Processing took longer than allowed several times; please try again later."


def _overdue(table: JobTable, now: datetime) -> Any:
    """RUNNING jobs past their type's time limit for one attempt."""
    return or_(
        false(),
        *(
            and_(
                Job.type == spec.name,
                Job.started_at < now - timedelta(seconds=spec.timeout_seconds),
            )
            for spec in table.values()
        ),
    )


def sweep(runtime: Runtime) -> list[str]:
    """Watchdog pass: re-queue stalled and overdue jobs (or give up on them once out of
    attempts), re-send lost messages. Returns the ids of the jobs it acted on."""
    settings = runtime.settings
    now = utcnow()
    stall = now - timedelta(seconds=settings.job_stall_seconds)
    with runtime.db.session() as s:
        running = s.scalars(
            select(Job).where(
                Job.state == JobState.RUNNING,
                Job.type.in_(list(runtime.jobs)),
                (Job.heartbeat_at < stall) | _overdue(runtime.jobs, now),
            )
        ).all()
        lost = s.scalars(
            select(Job).where(
                Job.state == JobState.PENDING,
                Job.type.in_(list(runtime.jobs)),
                Job.created_at < now - timedelta(seconds=UNDISPATCHED_SECONDS),
                (Job.dispatched_at.is_(None))
                | (
                    Job.dispatched_at
                    < now - timedelta(seconds=max(UNCLAIMED_SECONDS, settings.job_stall_seconds))
                ),
            )
        ).all()
    acted = [job.id for job in running if _requeue(runtime, job, stall)]
    for job in lost:
        acted.append(job.id)
        log.warning("job.redispatch", job_id=job.id)
        dispatch(runtime, job.id, job.type)
    return acted


def _requeue(runtime: Runtime, job: Job, stall: datetime) -> bool:
    """Take a stalled or overdue attempt's job from it: PENDING again, or FAILED (and its
    domain told) when it has no attempt left. False: it beat or finished meanwhile."""
    spec = runtime.jobs[job.type]
    ctx = JobContext(runtime, job.id, job.type, job.subject_id, job.attempts)
    stalled = job.heartbeat_at is None or job.heartbeat_at < stall
    give_up = job.attempts >= job.max_attempts
    if stalled:
        error = f"The worker processing this job stopped responding ({job.attempts} attempts)."
    else:
        error = (
            f"The job ran past its limit of {spec.timeout_seconds:g} seconds "
            f"({job.attempts} attempts)."
        )
    if not finish(ctx, JobState.FAILED if give_up else JobState.PENDING, error, time.monotonic()):
        return False
    log.warning(
        "job.stalled" if stalled else "job.timed_out",
        job_id=job.id,
        attempts=job.attempts,
        gave_up=give_up,
    )
    if not give_up:
        dispatch(runtime, job.id, job.type)
    elif (payload := parse_payload(spec, job)) is not None:
        spec.on_give_up(ctx, payload, STALLED if stalled else OVERDUE, permanent=False)
    return True


class Lease:
    """A named lease in the database that one holder has at a time, until it expires.

    Any process can try; :meth:`acquire` takes a free or expired lease, or renews its own.
    """

    def __init__(self, db: Database, name: str, seconds: float, holder: str | None = None):
        self.db = db
        self.name = name
        self.seconds = seconds
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    def acquire(self) -> bool:
        """Take or renew the lease for another ``seconds``; whether this holder has it."""
        now = utcnow()
        until = now + timedelta(seconds=self.seconds)
        with self.db.session() as s:
            res = s.execute(
                update(JobLease)
                .where(
                    JobLease.name == self.name,
                    (JobLease.holder == self.holder) | (JobLease.expires_at < now),
                )
                .values(holder=self.holder, expires_at=until)
            )
            if res.rowcount == 1:  # type: ignore[attr-defined]
                return True
        try:
            with self.db.session() as s:
                s.add(JobLease(name=self.name, holder=self.holder, expires_at=until))
        except IntegrityError:  # someone else holds it
            return False
        return True

    def release(self) -> None:
        """Give the lease up now (if held), so another process takes it at its next try."""
        with self.db.session() as s:
            s.execute(
                delete(JobLease).where(JobLease.name == self.name, JobLease.holder == self.holder)
            )


class Watchdog:
    """The deployment's watchdog: every web process ticks it, only the lease holder sweeps.

    :param passes: more periodic work that must run once per deployment (e.g. expiring
        uploads), run after the job sweep by the same holder.
    """

    LEASE = "mediaplane.watchdog"

    def __init__(
        self, runtime: Runtime, passes: Sequence[Callable[[Runtime], object]] = ()
    ) -> None:
        self.runtime = runtime
        self.passes = passes
        # Held across a missed tick or two; a dead holder's lease is taken over after it.
        interval = runtime.settings.watchdog_interval_seconds
        self.lease = Lease(runtime.db, self.LEASE, seconds=max(3 * interval, interval + 5))

    def tick(self) -> bool:
        """One watchdog pass if this process holds (or takes) the lease; whether it did."""
        if not self.lease.acquire():
            return False
        sweep(self.runtime)
        for work in self.passes:
            work(self.runtime)
        return True

    def release(self) -> None:
        """Hand the lease on now; if the database is gone, it expires by itself."""
        try:
            self.lease.release()
        except SQLAlchemyError:
            log.warning("watchdog.release_failed", exc_info=True)
