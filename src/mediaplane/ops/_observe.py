from __future__ import annotations

import itertools
import logging
import os
import sys
import time
from collections.abc import Iterator
from typing import Any

import structlog
from fastapi import APIRouter, Depends, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, SummaryMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mediaplane.catalog import ProcessAsset
from mediaplane.events import backlog
from mediaplane.http import ApiError, runtime_dep
from mediaplane.jobs import Job, JobState, jobs_by_state
from mediaplane.runtime import Runtime

router = APIRouter(tags=["ops"])
log = structlog.get_logger("mediaplane.http")


#: Library loggers whose INFO lines repeat ours (job start/finish, worker and server ready)
#: or narrate their internals (migrations, HTTP client calls): shown at DEBUG
#: (MEDIAPLANE_LOG_LEVEL=DEBUG brings them back). Their warnings and errors stay as they are.
_DEMOTED = (
    "alembic",
    "celery.app.trace",
    "celery.apps.worker",
    "celery.worker.consumer",
    "celery.worker.strategy",
    "httpx",
)


class _Demote(logging.Filter):
    """Re-levels the INFO chatter of ``_DEMOTED`` loggers to DEBUG, then applies ``level``."""

    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.INFO and record.name.startswith(_DEMOTED):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return record.levelno >= self.level


def renders_json(log_format: str = "auto", stream: Any = None) -> bool:
    """Whether log lines are JSON: asked for, or "auto" and ``stream`` (stderr) is no TTY."""
    if log_format != "auto":
        return log_format == "json"
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    return not (callable(isatty) and isatty())


def configure_logging(level: str = "INFO", log_format: str = "auto") -> None:
    """structlog lines on stderr, and stdlib logging (Celery, Alembic, warnings) the same way.

    JSON lines when ``log_format`` is "json", or "auto" and stderr is not a terminal; else
    structlog's console lines, coloured only on a terminal (never ANSI escapes in a file).
    """
    as_json = renders_json(log_format, sys.stderr)
    numeric = logging.getLevelName(level.upper())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True)
        if as_json
        else structlog.processors.TimeStamper(fmt="%H:%M:%S", utc=False),
    ]
    renderer: Any
    tail: list[Any]
    if as_json:
        renderer, tail = structlog.processors.JSONRenderer(), [structlog.processors.format_exc_info]
    else:
        colors = sys.stderr.isatty() and not os.environ.get("NO_COLOR")
        # Plain tracebacks: Rich's would print every frame's locals (URLs with passwords).
        renderer = structlog.dev.ConsoleRenderer(
            colors=colors, pad_level=False, exception_formatter=structlog.dev.plain_traceback
        )
        tail = []
    structlog.configure(
        processors=[*shared, *tail, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        # One write per line (print() writes the line and its newline apart, and a stdlib
        # record from another thread could land between them: two JSON objects on a line).
        logger_factory=structlog.WriteLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                *tail,
                renderer,
            ],
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
        )
    )
    handler.addFilter(_Demote(numeric))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    # billiard (Celery's pool) logs to "multiprocessing", which does not propagate: give it
    # ours before Celery gives it a handler in its own format.
    logging.getLogger("multiprocessing").handlers[:] = [handler]
    logging.captureWarnings(True)  # Python warnings become log lines, not stray stderr text


class _DbCollector(Collector):
    """Job metrics read from the database at scrape time, so every worker host counts."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def collect(self) -> Iterator[Any]:
        jobs = GaugeMetricFamily("mediaplane_jobs", "Jobs by state", labels=["state"])
        transcode = SummaryMetricFamily(
            "mediaplane_transcode_seconds", "Seconds spent in successful asset processing jobs"
        )
        waiting = GaugeMetricFamily(
            "mediaplane_events_backlog", "Events in the outbox the bus has not taken yet"
        )
        with self.runtime.db.session() as s:
            for state, n in jobs_by_state(s).items():
                jobs.add_metric([str(state)], n)
            waiting.add_metric([], backlog(s))
            count, total = s.execute(
                select(func.count(), func.coalesce(func.sum(Job.run_seconds), 0.0)).where(
                    Job.type == ProcessAsset.job_type, Job.state == JobState.SUCCEEDED
                )
            ).one()
        transcode.add_metric([], count_value=count, sum_value=float(total or 0.0))
        yield jobs
        yield transcode
        yield waiting


class Metrics:
    def __init__(self, runtime: Runtime) -> None:
        self.registry = CollectorRegistry()
        self.http = Histogram(
            "mediaplane_http_request_duration_seconds",
            "HTTP request latency",
            ["method", "route", "status"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.registry.register(_DbCollector(runtime))


class RequestObserver:
    """Per-process request bookkeeping shared by every path that answers HTTP requests: request
    ids and the latency histogram (``route`` is the route's path template, or "unmatched").

    Called from the event loop only (ASGI), so its caches need no lock.
    """

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        #: (method, route, status) → histogram child: ``labels()`` hashes and locks each time.
        self._series: dict[tuple[str, str, int], Any] = {}
        # Request ids: a random per-process prefix (made here, after the server forked) and a
        # counter — unique, and cheaper than a getrandom() call per request.
        self._rid_prefix = os.urandom(8).hex()
        self._rid_next = itertools.count()

    def request_id(self, scope: Scope) -> bytes:
        """The request's X-Request-Id (at most 64 characters), or a new one."""
        for k, v in scope.get("headers", ()):
            if k == b"x-request-id" and v:
                return bytes(v[:64])
        return f"{self._rid_prefix}{next(self._rid_next) & 0xFFFFFFFFFFFFFFFF:016x}".encode()

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one answered request in the latency histogram."""
        key = (method, route, status)
        series = self._series.get(key)
        if series is None:
            series = self.metrics.http.labels(method, route, str(status))
            if len(self._series) < 4096:  # unmatched paths share one label
                self._series[key] = series
        series.observe(seconds)


class RequestMiddleware:
    """Pure ASGI (keeps zero-copy file sends): request id, access log, latency histogram.

    Playback (``/play/…``) is what every viewer requests several times a second: a JSON line
    for each would cost more than serving it, so those requests are counted in the histogram
    and logged only when they fail (status >= 400); everything else is logged.
    """

    def __init__(self, app: ASGIApp, observer: RequestObserver) -> None:
        self.app = app
        self.observer = observer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid_bytes = self.observer.request_id(scope)
        rid_header = (b"x-request-id", rid_bytes)
        status = 500
        started = time.perf_counter()

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), rid_header]
            await send(message)

        # bind/reset by token: bound_contextvars() copies every bound variable each time.
        tokens = structlog.contextvars.bind_contextvars(request_id=rid_bytes.decode("latin-1"))
        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            try:
                elapsed = time.perf_counter() - started
                route = scope.get("route")
                path = getattr(route, "path", None) or "unmatched"
                self.observer.observe(scope["method"], path, status, elapsed)
                if status >= 400 or not path.startswith("/play/"):
                    log.info(
                        "http.request",
                        method=scope["method"],
                        path=scope["path"],
                        status=status,
                        ms=round(elapsed * 1000, 2),
                    )
            finally:
                structlog.contextvars.reset_contextvars(**tokens)


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request) -> Response:
    m: Metrics = request.app.state.metrics
    return Response(generate_latest(m.registry), media_type=CONTENT_TYPE_LATEST)


@router.get("/healthz", include_in_schema=False)
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", include_in_schema=False)
def readyz(rt: Runtime = Depends(runtime_dep)) -> dict[str, Any]:
    checks: dict[str, str] = {}
    try:
        rt.db.ping()
        checks["database"] = "ok"
    except Exception as exc:  # report, don't crash: this is the readiness probe
        checks["database"] = f"error: {type(exc).__name__}"
    try:
        rt.store.put_bytes("_health/probe", b"ok")
        checks["storage"] = "ok"
    except Exception as exc:
        checks["storage"] = f"error: {type(exc).__name__}"
    try:
        rt.toolchain  # noqa: B018 - resolves and checks ffmpeg/ffprobe/packager once
        checks["media_tools"] = "ok"
    except Exception as exc:
        checks["media_tools"] = f"error: {exc}"
    if any(v != "ok" for v in checks.values()):
        raise ApiError(503, "not_ready", "; ".join(f"{k}: {v}" for k, v in checks.items()))
    return {"status": "ready", "checks": checks, "events": _events_details(rt)}


def _events_details(rt: Runtime) -> dict[str, Any]:
    """The bus and the outbox's backlog: a bus that is down delays events, never the
    platform (they wait in the outbox), so it is a detail here, not a readiness failure."""
    with rt.db.session() as s:
        waiting = backlog(s)
    return {"bus": rt.bus.description, "backlog": waiting}
