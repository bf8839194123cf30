"""The lake's flusher: a task of the web process that lands the buffer (and, while the
dashboards are read, computes the view cache's hours a flush changed)."""

from __future__ import annotations

import asyncio

import structlog
from starlette.concurrency import run_in_threadpool

from ._lake import Lake
from ._metrics import ViewCache

__all__ = ["run_flusher"]

log = structlog.get_logger("mediaplane.analytics.flusher")

#: How often the flusher looks whether a flush is due.
TICK_SECONDS = 0.1
#: A failed write waits this long at most before the next try.
BACKOFF_MAX_SECONDS = 5.0


async def run_flusher(lake: Lake) -> None:
    """Land the buffer when it is due, forever; on cancel, land what is left first."""
    failures = 0
    try:
        while True:
            await asyncio.sleep(TICK_SECONDS)
            if not lake.due():
                continue
            try:
                landed = await run_in_threadpool(lake.flush)
                failures = 0
            except Exception:  # the store is down: the rows wait in the buffer
                failures += 1
                log.warning("analytics.flush_failed", failures=failures, exc_info=failures == 1)
                await asyncio.sleep(min(BACKOFF_MAX_SECONDS, TICK_SECONDS * 2**failures))
                continue
            if landed:
                try:  # the next dashboard page finds the hours ready
                    await run_in_threadpool(ViewCache(lake).refresh)
                except Exception:  # the page computes them then
                    log.warning("analytics.view_refresh_failed", exc_info=True)
    finally:
        if lake.pending():
            try:
                await asyncio.shield(run_in_threadpool(lake.flush))
            except Exception:
                log.exception("analytics.final_flush_failed", pending=lake.pending())
