"""Thumbnails: snapped to a small grid, served from stored frames, extracted under a cap.

``/play/{id}/thumbnail.jpg?time=S&width=W`` is anonymous and cheap to ask for, and each new
frame costs an ffmpeg in the web process. So (see :mod:`mediaplane.media._storyboard`):

* time and width snap to the storyboard grid and :data:`THUMBNAIL_WIDTHS`: an asset has at
  most ``MAX_FRAMES × 4`` distinct thumbnails, and only those are ever stored;
* a stored frame (the storyboard the asset job made, or one extracted earlier) is served
  without ffmpeg;
* otherwise one extraction per key runs (concurrent requests for it share the result), at
  most ``thumbnail_concurrency`` at once per process; a request waits up to
  ``thumbnail_queue_seconds`` for a slot, then gets 503 with ``Retry-After``.

The counts are Prometheus metrics (``mediaplane_thumbnail_extractions_in_flight`` and its
``_peak``, ``mediaplane_thumbnail_extractions_total``, ``mediaplane_thumbnail_busy_total``).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from fastapi import Depends, Query, Request, Response
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.concurrency import run_in_threadpool

from mediaplane.http import ApiError, runtime_dep
from mediaplane.runtime import Runtime

from ._origin import router, send_text
from ._service import (
    THUMB_CACHE,
    admitted,
    audio_poster,
    cache_control,
    make_thumbnail,
    plan_thumbnail,
    playable,
    stored_thumbnail,
    storyboard_text,
)

if TYPE_CHECKING:
    from fastapi import FastAPI

__all__ = ["ThumbnailLimiter"]


class ThumbnailLimiter(Collector):
    """At most ``slots`` extractions at once in this process; one per key at a time."""

    def __init__(self, slots: int, queue_seconds: float) -> None:
        self.slots = asyncio.Semaphore(slots)
        self.queue_seconds = queue_seconds
        self.in_flight = self.peak = self.total = self.busy = 0
        self._pending: dict[str, asyncio.Future[bytes]] = {}

    async def run(
        self, key: str, stored: Callable[[], bytes | None] | None, make: Callable[[], bytes]
    ) -> bytes:
        """What ``stored()`` finds, else ``make()`` under the cap (both in a thread), shared
        by every concurrent caller for ``key``: one store read and at most one extraction."""
        pending = self._pending.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        try:
            # Read under the key's claim: an extraction that just finished has stored it.
            found = await run_in_threadpool(stored) if stored is not None else None
            result = found if found is not None else await self._extract(make)
        except BaseException as exc:
            future.set_exception(exc if isinstance(exc, Exception) else _busy())
            future.exception()  # retrieved: no "never retrieved" warning without waiters
            raise
        else:
            future.set_result(result)
            return result
        finally:
            del self._pending[key]

    async def _extract(self, make: Callable[[], bytes]) -> bytes:
        try:
            async with asyncio.timeout(self.queue_seconds):
                await self.slots.acquire()
        except TimeoutError:
            self.busy += 1
            raise _busy() from None
        self.in_flight += 1
        self.total += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            return await run_in_threadpool(make)
        finally:
            self.in_flight -= 1
            self.slots.release()

    def collect(self) -> Iterator[Any]:
        yield GaugeMetricFamily(
            "mediaplane_thumbnail_extractions_in_flight",
            "Thumbnail extractions (ffmpeg) running now in this web process",
            value=self.in_flight,
        )
        yield GaugeMetricFamily(
            "mediaplane_thumbnail_extractions_in_flight_peak",
            "Most thumbnail extractions running at once in this web process since it started",
            value=self.peak,
        )
        yield CounterMetricFamily(
            "mediaplane_thumbnail_extractions",
            "Thumbnail extractions started in this web process",
            value=self.total,
        )
        yield CounterMetricFamily(
            "mediaplane_thumbnail_busy",
            "Thumbnail requests refused with 503: every extraction slot stayed busy",
            value=self.busy,
        )


def _busy() -> ApiError:
    return ApiError(
        503,
        "thumbnails_busy",
        "Too many thumbnails are being made right now; retry in a moment.",
        headers={"Retry-After": "1", "Cache-Control": "no-store"},
    )


def _limiter(app: FastAPI, rt: Runtime) -> ThumbnailLimiter:
    """This app's limiter, made on first use (in the event loop) and added to /metrics."""
    limiter: ThumbnailLimiter | None = getattr(app.state, "thumbnail_limiter", None)
    if limiter is None:
        s = rt.settings
        limiter = ThumbnailLimiter(s.thumbnail_concurrency, s.thumbnail_queue_seconds)
        app.state.thumbnail_limiter = limiter
        metrics = getattr(app.state, "metrics", None)
        if metrics is not None:
            metrics.registry.register(limiter)
    return limiter


@router.get("/{playback_id}/thumbnail.jpg")
async def thumbnail(
    playback_id: str,
    request: Request,
    rt: Runtime = Depends(runtime_dep),
    time_s: float = Query(0.0, alias="time", ge=0, le=1e7),
    width: int = Query(640, ge=16, le=1920),
) -> Response:
    """A JPEG frame near ``time`` seconds, about ``width`` pixels wide: the time snaps to the
    asset's storyboard grid (whole segments, at most 100 points), the width up to one of
    160, 320, 640 or 1280 (the response is that wide)."""
    limiter = _limiter(request.app, rt)
    p = await run_in_threadpool(playable, rt, playback_id, request, "t")
    if not p.presentation.video:
        # No picture to take a frame from: an audio-only asset's poster is its waveform.
        jpeg = await run_in_threadpool(audio_poster, rt, p)
        return _jpeg(jpeg, cache_control(p, THUMB_CACHE))
    thumb = plan_thumbnail(p, time_s, width)
    make = functools.partial(make_thumbnail, rt, p, thumb)
    if thumb.final:
        jpeg = await limiter.run(thumb.key, functools.partial(stored_thumbnail, rt, thumb), make)
    else:  # nothing stored while the ladder grows
        jpeg = await limiter.run(f"{thumb.key}?growing", None, make)
    return _jpeg(jpeg, thumb.cache)


def _jpeg(jpeg: bytes, cache: str) -> Response:
    return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": cache})


@router.api_route("/{playback_id}/storyboard.vtt", methods=["GET", "HEAD"])
def storyboard_vtt(
    playback_id: str,
    request: Request,
    rt: Runtime = Depends(runtime_dep),
    width: int = Query(160, ge=16, le=1920),
) -> Response:
    """Seek previews as WebVTT (players' thumbnail tracks): one cue per storyboard grid point
    pointing at its thumbnail, made with the ladder at 160 and 320 pixels wide."""
    p, access = admitted(rt, playback_id, request, "s")
    return send_text(request, storyboard_text(p, width, access))
