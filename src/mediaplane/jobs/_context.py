from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select, update

from mediaplane.db import utcnow

from ._model import Job, JobState

if TYPE_CHECKING:
    from mediaplane.runtime import Runtime

PROGRESS_WRITE_SECONDS = 0.5


@dataclass
class JobContext:
    """What a handler gets beside its payload: the process runtime, which attempt this is,
    and progress and heartbeat writes fenced to this attempt."""

    runtime: Runtime
    job_id: str
    type: str
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
        """Whether this attempt still owns the job (not re-queued by the watchdog since)."""
        with self.runtime.db.session() as s:
            return s.scalar(select(func.count()).select_from(Job).where(self._owned())) == 1
