"""Jobs: a closed, typed set of background jobs run by Celery, with state in our database.

Job state is an enum state machine (``PENDING → RUNNING → SUCCEEDED | FAILED``, and
``RUNNING → PENDING`` when a stalled job is re-queued). A claim is one conditional UPDATE,
so a duplicate broker message never runs a job twice at once; a watchdog re-queues jobs
whose worker stopped heart-beating and fails them after ``max_attempts``.

Errors::

    JobError
    ├── PermanentJobError   the input can never succeed (bad media): no retry
    └── InvalidTransition   a state change the machine does not allow
"""

from __future__ import annotations

from ._celery import make_celery, run_worker
from ._model import Job, JobState, JobType
from ._registry import JOB_SPECS, JobSpec
from ._service import (
    InvalidTransition,
    JobContext,
    JobError,
    PermanentJobError,
    create_job,
    dispatch,
    jobs_by_state,
    run_job,
    sweep,
)

__all__ = [
    "JOB_SPECS",
    "InvalidTransition",
    "Job",
    "JobContext",
    "JobError",
    "JobSpec",
    "JobState",
    "JobType",
    "PermanentJobError",
    "create_job",
    "dispatch",
    "jobs_by_state",
    "make_celery",
    "run_job",
    "run_worker",
    "sweep",
]
