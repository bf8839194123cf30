from __future__ import annotations

import contextlib
import os
import socket
import sys
import threading
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import structlog
from celery import Celery
from celery.signals import worker_process_init, worker_ready

from ._service import TASK_NAME, run_job

if TYPE_CHECKING:
    from mediaplane.config import Settings
    from mediaplane.runtime import Runtime


EMBEDDED_POLL_SECONDS = 0.2
#: Connecting to the broker, and (Redis) waiting for its reply: a stalled broker costs this
#: long per try, never forever (redis-py waits forever by default).
BROKER_CONNECT_SECONDS = 4.0
BROKER_REPLY_SECONDS = 10.0
log = structlog.get_logger("mediaplane.worker")


def _transport_options(broker_url: str) -> dict[str, Any]:
    # The SQL transport hands its options to create_engine(): none for it.
    if urlsplit(broker_url).scheme in ("redis", "rediss"):
        return {
            "socket_connect_timeout": BROKER_CONNECT_SECONDS,
            "socket_timeout": BROKER_REPLY_SECONDS,
        }
    return {}


def make_celery(settings: Settings, current: Callable[[], Runtime]) -> Celery:
    """The Celery app for this configuration; the broker is embedded unless a URL is set.

    :param current: this process's runtime, for the task that runs a job (a pool process
        has its own, built after the fork).
    """
    if settings.embedded_broker:
        settings.data_path.mkdir(parents=True, exist_ok=True)
    app = Celery("mediaplane", broker=settings.effective_broker_url, set_as_current=False)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_ignore_result=True,
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=BROKER_CONNECT_SECONDS,
        broker_transport_options=_transport_options(settings.effective_broker_url),
        task_default_queue=f"{settings.queue_namespace}.default",
        task_serializer="json",
        accept_content=["json"],
    )
    if settings.embedded_broker:
        # kombu's SQL transport polls once a second by default: most of a job's queue wait.
        # Its transport options go to create_engine(), so the class default is the only knob.
        from kombu.transport import sqlalchemy as kombu_sql

        kombu_sql.Transport.polling_interval = EMBEDDED_POLL_SECONDS

    def run_job_task(task: Any, job_id: str) -> None:
        """The single Celery task: look the job up and run it in this worker process."""
        run_job(current(), job_id, worker=f"{socket.gethostname()}:{os.getpid()}")

    app.task(name=TASK_NAME, bind=True)(run_job_task)
    return app


def queues(runtime: Runtime) -> list[str]:
    """The broker queues of every type in the runtime's job table."""
    return [f"{runtime.settings.queue_namespace}.{q}" for q in runtime.jobs.queues()]


def _quiet_root_warning() -> None:
    """Celery warns in a 9-line block when it runs as root (containers do). We accept only
    JSON messages, the case Celery allows as root; say it once, in one log line."""
    from celery.exceptions import SecurityWarning

    warnings.filterwarnings("ignore", category=SecurityWarning)
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        log.warning(
            "running as root: jobs run ffmpeg on uploaded files, "
            "so better run Mediaplane as an unprivileged user"
        )


def _stdout_to_log() -> None:
    """Celery writes a few notes (warm shutdown, Ctrl-C hints) straight to file descriptor 1:
    turn each line written there into a log line, so a log holds nothing else."""
    read_fd, write_fd = os.pipe()
    sys.stdout.flush()
    os.dup2(write_fd, 1)  # pool processes inherit it
    os.close(write_fd)

    def relay() -> None:
        with os.fdopen(read_fd, "rb") as pipe:
            for line in pipe:
                if text := line.decode(errors="replace").strip():
                    log.info(text, logger="celery.apps.worker")

    threading.Thread(target=relay, daemon=True, name="stdout-to-log").start()


def run_worker(
    runtime: Runtime,
    concurrency: int | None = None,
    *,
    ready_fd: int | None = None,
    warm: Callable[[], object] | None = None,
) -> None:
    """Run a Celery worker consuming the queues of the runtime's job table (blocks).

    :param ready_fd: a pipe to write one byte to (then close) once the worker consumes jobs.
    :param warm: run once in each pool process before its first job (e.g. resolve tools).
    """
    settings = runtime.settings
    if warm is not None:
        worker_process_init.connect(lambda **_: warm(), weak=False)

    names = queues(runtime)
    workers = concurrency or settings.worker_concurrency
    # Unique per process: two workers on one host must not share a control queue.
    hostname = f"mediaplane-{os.getpid()}@{socket.gethostname()}"

    @worker_ready.connect(weak=False)  # type: ignore[untyped-decorator]
    def _ready(**_: object) -> None:
        if ready_fd is None:  # Celery's own line is DEBUG (configure_logging): say it once
            from kombu.utils.url import maybe_sanitize_url

            broker = maybe_sanitize_url(settings.effective_broker_url)
            log.info(f"worker {hostname} ready.", broker=broker, queues=names, concurrency=workers)
            return
        with contextlib.suppress(OSError):  # `up` says it, in its ready block
            os.write(ready_fd, b"1")
            os.close(ready_fd)

    _quiet_root_warning()
    _stdout_to_log()
    runtime.celery.worker_main(
        [
            "--quiet",  # no banner: `up` prints one ready block, and logs say the rest
            "--no-color",
            "worker",
            f"--loglevel={settings.log_level.upper()}",
            "-Q",
            ",".join(names),
            "-c",
            str(workers),
            "-n",
            hostname,
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ]
    )
