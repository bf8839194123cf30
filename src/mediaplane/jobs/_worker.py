from __future__ import annotations

import os
import socket
from typing import Any

from ._service import run_job


def run_job_task(task: Any, job_id: str) -> None:
    """The single Celery task: look the job up and run it in this worker process."""
    from mediaplane.runtime import Runtime

    run_job(Runtime.get(), job_id, worker=f"{socket.gethostname()}:{os.getpid()}")
