"""Jobs: the background-job mechanism, run by Celery with state in our database. It knows
no job type: the app wires a :class:`JobTable` of rows (:class:`JobSpec`: payload model,
handler, give-up callback, queue, attempts, timeout, concurrency) into the runtime.

Job state is an enum state machine (``PENDING → RUNNING → SUCCEEDED | FAILED``, and
``RUNNING → PENDING`` when a stalled or overdue job is re-queued). A claim is one
conditional UPDATE, so a duplicate broker message never runs a job twice at once, and it
holds a type to its concurrency limit (a job over it is sent again a little later). Every
write of an attempt is fenced to that attempt. The :class:`Watchdog` runs in one process of
the deployment at a time (a :class:`Lease` row): it re-queues jobs whose worker stopped
heart-beating or that ran past their type's timeout, gives up after their attempts, and
re-sends messages that were lost.

Errors::

    JobError
    ├── PermanentJobError   the input can never succeed (bad media): no retry
    ├── InvalidTransition   a state change the machine does not allow
    └── UnknownJobType      a type that is not in the process's job table (also a KeyError)
"""

from __future__ import annotations

from ._celery import make_celery, run_worker
from ._context import JobContext
from ._errors import InvalidTransition, JobError, PermanentJobError, UnknownJobType
from ._model import Job, JobLease, JobState
from ._service import create_job, dispatch, jobs_by_state, run_job
from ._table import GiveUp, Handler, JobPayload, JobSpec, JobTable
from ._watchdog import Lease, Watchdog, sweep

__all__ = [
    "GiveUp",
    "Handler",
    "InvalidTransition",
    "Job",
    "JobContext",
    "JobError",
    "JobLease",
    "JobPayload",
    "JobSpec",
    "JobState",
    "JobTable",
    "Lease",
    "PermanentJobError",
    "UnknownJobType",
    "Watchdog",
    "create_job",
    "dispatch",
    "jobs_by_state",
    "make_celery",
    "run_job",
    "run_worker",
    "sweep",
]
