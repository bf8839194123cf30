"""Composition root: the job table (every job type, its handler and limits, in one place)
and the ASGI app factory that mounts each domain's router on one FastAPI app."""

from __future__ import annotations

import asyncio
import contextlib
import re
import warnings
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any

import structlog
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from mediaplane import (
    __version__,
    analytics,
    catalog,
    delivery,
    ingest,
    library,
    live,
    ops,
    web,
    webhooks,
)
from mediaplane.accounts import api_router, ensure_admin_token, oidc_router
from mediaplane.catalog import (
    EncodeChunk,
    FingerprintAudio,
    FinishRecording,
    ImportUrl,
    ProcessAsset,
    RepackageAsset,
    StitchRung,
)
from mediaplane.config import Settings, get_settings
from mediaplane.events import Relay, prune
from mediaplane.http import install_error_handlers
from mediaplane.ingest import import_url, sweep_expired
from mediaplane.jobs import JobSpec, JobTable, Watchdog
from mediaplane.pipeline import (
    asset_gave_up,
    encode_chunk_job,
    fingerprint_asset,
    fingerprint_gave_up,
    process_asset,
    repackage_asset,
    retire_replaced_renditions,
    stitch_rung_job,
)
from mediaplane.runtime import Runtime

log = structlog.get_logger("mediaplane.app")

#: What a URL import may take beyond its download deadline: storing the file it fetched.
IMPORT_STORE_SECONDS = 600.0
#: What processing may take beyond its longest encode: probing, packaging, publishing.
PROCESS_MARGIN_SECONDS = 3600.0


def job_table(settings: Settings) -> JobTable:
    """Every job type of Mediaplane, one row each; the web app and the worker both run
    with it (``Runtime(settings, job_table=job_table)``)."""
    attempts = settings.job_max_attempts
    encode = settings.encode_timeout_max_seconds
    return JobTable(
        [
            JobSpec(
                ImportUrl,
                import_url,
                asset_gave_up,
                queue="io",
                attempts=attempts,
                timeout_seconds=settings.import_timeout_seconds + IMPORT_STORE_SECONDS,
            ),
            JobSpec(
                ProcessAsset,
                process_asset,
                asset_gave_up,
                queue="media",
                attempts=attempts,
                timeout_seconds=encode + PROCESS_MARGIN_SECONDS,
            ),
            # Duplicate detection only: giving up never errors the asset, it marks the
            # fingerprint.
            JobSpec(
                FingerprintAudio,
                fingerprint_asset,
                fingerprint_gave_up,
                queue="media",
                attempts=attempts,
                timeout_seconds=3600,
            ),
            # A chunked ladder: one rung over one span of the source per job, on any worker.
            JobSpec(
                EncodeChunk,
                encode_chunk_job,
                asset_gave_up,
                queue="media",
                attempts=attempts,
                timeout_seconds=3600,
            ),
            # Joins a rung's chunks, packages the rung and adds it to the asset's manifests.
            # Its own queue: a rung whose chunks are done is published next, not after every
            # queued chunk.
            JobSpec(
                StitchRung,
                stitch_rung_job,
                asset_gave_up,
                queue="package",
                attempts=attempts,
                timeout_seconds=3600,
            ),
            # A protection policy changed: the stored renditions packaged again (no
            # re-encode: seconds to minutes), the old ones playing meanwhile.
            JobSpec(
                RepackageAsset,
                repackage_asset,
                asset_gave_up,
                queue="package",
                attempts=attempts,
                timeout_seconds=3600,
            ),
            # A live recording's segments, as the live packager wrote them, stored and
            # listed as the asset's VOD presentation (no re-encode: seconds).
            # The analytics warehouse: dbt build of the QoE models and their data tests over
            # the lake (seconds to minutes); one at a time.
            JobSpec(
                analytics.BuildAnalytics,
                analytics.build_job,
                analytics.build_gave_up,
                queue="io",
                attempts=1,
                timeout_seconds=3600,
                concurrency=1,
            ),
            JobSpec(
                FinishRecording,
                live.finish_recording,
                asset_gave_up,
                queue="package",
                attempts=attempts,
                timeout_seconds=3600,
            ),
        ]
    )


def prune_outbox(runtime: Runtime) -> int:
    """A watchdog pass: delete events published longer than the retention ago."""
    with runtime.db.session() as s:
        return prune(s, runtime.settings.events_retention_seconds)


def prune_lake(runtime: Runtime) -> int:
    """A watchdog pass: delete the analytics lake's partitions past their retention."""
    return analytics.prune_lake(runtime)


def prune_webhook_log(runtime: Runtime) -> int:
    """A watchdog pass: delete finished webhook deliveries older than the events' retention
    (the delivery log keeps as long as the outbox)."""
    with runtime.db.session() as s:
        return webhooks.prune_deliveries(s, runtime.settings.events_retention_seconds)


async def _watchdog(watchdog: Watchdog) -> None:
    """Tick the deployment's watchdog (it sweeps only where it holds the lease)."""
    while True:
        await asyncio.sleep(watchdog.runtime.settings.watchdog_interval_seconds)
        try:
            await run_in_threadpool(watchdog.tick)
        except Exception:  # keep watching; the next pass retries
            log.exception("watchdog.error")


#: A loop whose pass failed (the bus or the database is down) waits this long at most.
BACKOFF_MAX_SECONDS = 5.0


async def _backoff_loop(
    name: str,
    tick: Callable[[], Awaitable[bool]],
    idle: Callable[[], Awaitable[None]],
    interval: float,
) -> None:
    """Run ``tick`` forever: after a pass with more to do at once (True) the next pass starts
    at once, else after ``idle``; a failed pass is logged (with its traceback the first time)
    and retried with exponential backoff up to :data:`BACKOFF_MAX_SECONDS`."""
    failures = 0
    while True:
        try:
            busy = await tick()
            failures = 0
        except Exception:  # what it needs is down: its work waits in the database
            failures += 1
            log.warning(f"{name}_failed", failures=failures, exc_info=failures == 1)
            await asyncio.sleep(min(BACKOFF_MAX_SECONDS, interval * 2**failures))
            continue
        if not busy:
            await idle()


def _relay(
    relay: Relay, interval: float, dispatcher: webhooks.Dispatcher
) -> Coroutine[Any, Any, None]:
    """Relay the outbox to the bus (only where this process holds the relay's lease): a
    full batch is followed at once by the next. After a batch (and its webhook fan-out)
    committed, ``dispatcher`` is woken to send it."""

    async def tick() -> bool:
        n = await run_in_threadpool(relay.tick)
        if n:
            dispatcher.wake()
        return n >= relay.batch

    return _backoff_loop("events.relay", tick, lambda: asyncio.sleep(interval), interval)


def _webhooks(dispatcher: webhooks.Dispatcher, interval: float) -> Coroutine[Any, Any, None]:
    """Start sending due webhook deliveries (a thread each, bounded per endpoint); never
    waits for an answer, so a slow endpoint holds only its own threads. With nothing to
    start it waits until the relay fans out or a sender thread is free."""

    async def tick() -> bool:
        return bool(await run_in_threadpool(dispatcher.tick))

    async def idle() -> None:
        await run_in_threadpool(dispatcher.idle, interval)

    return _backoff_loop("webhooks.dispatch", tick, idle, interval)


_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def _valid_openapi(spec: dict[str, Any]) -> dict[str, Any]:
    """Make FastAPI's document valid for generated clients, in place.

    A route serving GET and HEAD gets one operation id for both methods (ending in whichever
    method its set yields first): each operation of a shared id gets ``{id}_{method}``. An
    OPTIONS handler mounted on two paths takes no arguments, so the path's ``{parameter}``
    is declared on it here, as on every operation whose path names it.
    """
    operations = [
        (path, method, op)
        for path, item in spec.get("paths", {}).items()
        for method, op in item.items()
        if method in _METHODS
    ]
    uses = Counter(op.get("operationId") for _, _, op in operations)
    for path, method, op in operations:
        if uses[op.get("operationId")] > 1:
            base = re.sub(rf"_({'|'.join(_METHODS)})$", "", op["operationId"])
            op["operationId"] = f"{base}_{method}"
        declared = {p.get("name") for p in op.get("parameters", []) if p.get("in") == "path"}
        missing = [n for n in re.findall(r"{(\w+)}", path) if n not in declared]
        if missing:
            op.setdefault("parameters", []).extend(
                {"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
                for n in missing
            )
    return spec


def _openapi(app: FastAPI) -> dict[str, Any]:
    with warnings.catch_warnings():  # the duplicate ids it warns about are fixed here
        warnings.filterwarnings("ignore", message="Duplicate Operation ID")
        spec = FastAPI.openapi(app)
    return _valid_openapi(spec)


#: The CORS policy: any origin may play and upload (no credentials: bearer tokens).
CORS: dict[str, Any] = {
    "allow_origins": ["*"],
    "allow_methods": ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
    "allow_headers": ["*"],
    "expose_headers": [
        "Content-Length",
        "Content-Range",
        "Accept-Ranges",
        "ETag",
        "X-Request-Id",
        # tus resumable uploads (a browser client reads these)
        "Location",
        "Upload-Offset",
        "Upload-Length",
        "Upload-Metadata",
        "Upload-Expires",
        "Upload-Concat",
        "Upload-Defer-Length",
        "Tus-Resumable",
        "Tus-Version",
        "Tus-Extension",
        "Tus-Max-Size",
        "Tus-Checksum-Algorithm",
    ],
    "max_age": 86400,
}


def _cors_simple_headers() -> list[tuple[bytes, bytes]]:
    """The headers the CORS middleware adds to an answer to a request with an ``Origin``
    (with every origin allowed and no credentials it names no origin, so they are fixed)."""
    cors = CORSMiddleware(_no_app, **CORS)
    return [(k.lower().encode(), v.encode()) for k, v in cors.simple_headers.items()]


async def _no_app(scope: Scope, receive: Receive, send: Send) -> None:
    raise NotImplementedError  # only CORSMiddleware's configuration is read


class _App(FastAPI):
    """FastAPI with ``front`` in front of all of it (its per-request telemetry check and its
    middleware stack, error handling included): ``front`` answers what it can and passes the
    rest to :meth:`framework`."""

    front: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.front is None:
            await self.framework(scope, receive, send)
        else:
            scope["app"] = self
            await self.front(scope, receive, send)

    async def framework(self, scope: Scope, receive: Receive, send: Send) -> None:
        """FastAPI itself."""
        await super().__call__(scope, receive, send)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app for ``settings`` (default: from MEDIAPLANE_* environment variables)."""
    settings = settings or get_settings()
    ops.configure_logging(settings.log_level, settings.log_format)
    runtime = Runtime.get(settings, job_table=job_table)
    watchdog = Watchdog(
        runtime,
        passes=[
            sweep_expired,
            prune_outbox,
            prune_webhook_log,
            prune_lake,
            retire_replaced_renditions,
            analytics.schedule_build,
            live.idle_expired_sessions,
        ],
    )
    relay = (
        Relay(runtime.db, runtime.bus, on_published=webhooks.fan_out)
        if settings.events_relay
        else None
    )
    dispatcher = webhooks.Dispatcher.of(runtime.db, settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with asyncio.TaskGroup() as tg:
            interval = settings.events_relay_interval_seconds
            tasks = [tg.create_task(_watchdog(watchdog))]
            if relay is not None:
                tasks.append(tg.create_task(_relay(relay, interval, dispatcher)))
            tasks.append(tg.create_task(_webhooks(dispatcher, interval)))
            tasks.append(tg.create_task(analytics.run_flusher(analytics.lake_of(runtime))))
            yield
            for task in tasks:
                task.cancel()
        await run_in_threadpool(watchdog.release)  # another web process takes over at once
        if relay is not None:
            await run_in_threadpool(relay.release)
        dispatcher.close()
        runtime.bus.close()
        runtime.db.dispose()

    app = _App(title="Mediaplane", version=__version__, lifespan=lifespan)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    app.state.runtime = runtime
    app.state.admin_token, _ = ensure_admin_token(settings)
    app.state.metrics = ops.Metrics(runtime)
    install_error_handlers(app)
    app.include_router(catalog.router)
    app.include_router(catalog.cpix_router)
    app.include_router(live.router)
    app.include_router(live.webrtc_router)
    app.include_router(ingest.router)
    app.include_router(api_router())
    app.include_router(oidc_router())
    app.include_router(library.router)
    app.include_router(webhooks.router)
    app.include_router(delivery.router)
    app.include_router(delivery.keys_router)
    app.include_router(analytics.router)
    app.include_router(ops.router)
    app.include_router(web.router)
    observer = ops.RequestObserver(app.state.metrics)
    app.add_middleware(CORSMiddleware, **CORS)
    app.add_middleware(ops.RequestMiddleware, observer=observer)
    # In front of the whole stack: playback answers what the layers above would add; live
    # playback ids are answered before the VOD lookup.
    cors = _cors_simple_headers()
    # CMCD of every /play request (lean path, live, routes) goes to the lake's buffer.
    app.front = analytics.CmcdTap(
        delivery.LiveOrigin(delivery.PlayOrigin(app.framework, observer, cors), cors)
    )
    return app
