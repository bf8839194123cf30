"""ASGI app factory: mounts each domain's router on one FastAPI app."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import structlog
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.concurrency import run_in_threadpool

from mediaplane import __version__
from mediaplane.accounts import ensure_admin_token
from mediaplane.config import Settings, get_settings
from mediaplane.http import install_error_handlers
from mediaplane.runtime import Runtime

log = structlog.get_logger("mediaplane.app")


async def _watchdog(runtime: Runtime) -> None:
    from mediaplane.ingest import sweep_expired
    from mediaplane.jobs import sweep

    while True:
        await asyncio.sleep(runtime.settings.watchdog_interval_seconds)
        try:
            await run_in_threadpool(sweep, runtime)
            await run_in_threadpool(sweep_expired, runtime)
        except Exception:  # keep watching; the next pass retries
            log.exception("watchdog.error")


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app for ``settings`` (default: from MEDIAPLANE_* environment variables)."""
    from mediaplane import catalog, delivery, ingest, ops, web

    settings = settings or get_settings()
    ops.configure_logging(settings.log_level, settings.log_json)
    runtime = Runtime.get(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with asyncio.TaskGroup() as tg:
            task = tg.create_task(_watchdog(runtime))
            yield
            task.cancel()
        runtime.db.dispose()

    app = FastAPI(title="Mediaplane", version=__version__, lifespan=lifespan)
    app.state.runtime = runtime
    app.state.admin_token, _ = ensure_admin_token(settings)
    app.state.metrics = ops.Metrics(runtime)
    install_error_handlers(app)
    app.include_router(catalog.api_router())  # type: ignore[arg-type]
    app.include_router(ingest.uploads_router())  # type: ignore[arg-type]
    app.include_router(delivery.router)
    app.include_router(ops.router)
    app.include_router(web.router)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=["*"],
        allow_methods=["GET", "HEAD", "POST", "PATCH", "DELETE", "OPTIONS"],
        allow_headers=["*"],
        expose_headers=[
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
        max_age=86400,
    )
    app.add_middleware(ops.RequestMiddleware, metrics=app.state.metrics)
    return app
