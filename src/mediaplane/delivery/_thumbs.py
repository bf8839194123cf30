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
import contextlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from fastapi import Depends, Query, Request, Response
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.concurrency import run_in_threadpool

from mediaplane.catalog import poster_key
from mediaplane.http import ApiError, runtime_dep
from mediaplane.media import (
    STORYBOARD_WIDTHS,
    extract_thumbnail,
    snap_thumbnail,
    storyboard_points,
    thumbnail_name,
)
from mediaplane.runtime import Runtime
from mediaplane.storage import ObjectNotFound

from ._origin import (
    GROWING_CACHE,
    MANIFEST_CACHE,
    THUMB_CACHE,
    Playable,
    Text,
    _cache,
    _manifest,
    _playable,
    _text,
    router,
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


def _audio_poster(rt: Runtime, p: Playable) -> Response:
    """The one stored poster (a waveform, made by the asset job) of an audio-only asset,
    whatever time or width was asked for."""
    if not p.presentation.audio_only:
        raise ApiError(404, "not_found", "This asset has no video.")
    try:
        jpeg = rt.store.get_bytes(poster_key(p.asset_id))
    except ObjectNotFound:
        raise ApiError(404, "not_found", "This asset has no poster.") from None
    headers = {"Cache-Control": _cache(p, THUMB_CACHE)}
    return Response(jpeg, media_type="image/jpeg", headers=headers)


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
    p = await run_in_threadpool(_playable, rt, playback_id, request)
    pres = p.presentation
    videos = pres.video
    if not videos:
        # No picture to take a frame from: an audio-only asset's poster is its waveform.
        return await run_in_threadpool(_audio_poster, rt, p)
    t, w = snap_thumbnail(time_s, width, pres.duration, pres.segment_seconds)
    r = next((v for v in videos if (v.width or 0) >= w), videos[-1])
    key = f"assets/{p.asset_id}/{thumbnail_name(t, w)}"
    # While the ladder still grows, the frame may come from a nearer segment: keep it briefly.
    final = pres.complete
    headers = {"Cache-Control": _cache(p, THUMB_CACHE if final else GROWING_CACHE)}

    def stored() -> bytes | None:
        with contextlib.suppress(ObjectNotFound):
            return rt.store.get_bytes(key)
        return None

    def make() -> bytes:
        ticks = t * r.timescale
        seg = next(
            (s for s in r.segments if s.start <= ticks < s.start + s.duration), r.segments[-1]
        )
        prefix = f"assets/{p.asset_id}/cmaf/{r.id}"
        data = rt.store.get_bytes(f"{prefix}/init.mp4") + rt.store.get_bytes(
            f"{prefix}/{seg.number}.m4s"
        )
        seek = max(0.0, (ticks - seg.start) / r.timescale)
        jpeg = extract_thumbnail(rt.toolchain, rt.settings, data, seek, w)
        if final:
            rt.store.put_bytes(key, jpeg)
        return jpeg

    if final:
        jpeg = await limiter.run(key, stored, make)
    else:  # nothing stored while the ladder grows
        jpeg = await limiter.run(f"{key}?growing", None, make)
    return Response(jpeg, media_type="image/jpeg", headers=headers)


def _vtt_time(seconds: float) -> str:
    ms = round(seconds * 1000)
    return f"{ms // 3600000:02d}:{ms // 60000 % 60:02d}:{ms // 1000 % 60:02d}.{ms % 1000:03d}"


@router.api_route("/{playback_id}/storyboard.vtt", methods=["GET", "HEAD"])
def storyboard_vtt(
    playback_id: str,
    request: Request,
    rt: Runtime = Depends(runtime_dep),
    width: int = Query(160, ge=16, le=1920),
) -> Response:
    """Seek previews as WebVTT (players' thumbnail tracks): one cue per storyboard grid point
    pointing at its thumbnail, made with the ladder at 160 and 320 pixels wide."""
    p = _playable(rt, playback_id, request)
    pres = p.presentation
    if not pres.video:
        raise ApiError(404, "not_found", "This asset has no video.")
    w = next((x for x in STORYBOARD_WIDTHS if x >= width), STORYBOARD_WIDTHS[-1])

    def render() -> str:
        points = storyboard_points(pres.duration, pres.segment_seconds)
        ends = [*points[1:], pres.duration]
        cues = (
            f"{_vtt_time(t)} --> {_vtt_time(end)}\nthumbnail.jpg?time={t}&width={w}\n"
            for t, end in zip(points, ends, strict=True)
        )
        return "WEBVTT\n\n" + "\n".join(cues)

    cache = MANIFEST_CACHE if pres.complete else GROWING_CACHE
    text: Text = _manifest(p, f"storyboard:{w}", render, "text/vtt; charset=utf-8", cache)
    return _text(request, text)
