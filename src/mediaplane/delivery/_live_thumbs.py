"""Live thumbnails: ``/play/{live playback id}/thumbnail.jpg`` is the stream's newest keyframe.

The newest complete segment of the session's top video rung begins with a keyframe; its
first frame, decoded by ffmpeg (init segment + that segment on stdin,
:func:`mediaplane.media.extract_thumbnail`), is the picture. Bounded like VOD thumbnails:
each extraction runs under the web process's :class:`._thumbs.ThumbnailLimiter` (the same
``thumbnail_concurrency`` slots, concurrent requests for one picture share one ffmpeg), and
a picture is kept :data:`CACHE_SECONDS` (a segment lasts 2-4 s: a newer one is not there
sooner), so a thousand viewers polling the poster cost one ffmpeg per segment at most.

``width`` snaps up to one of the VOD widths (160, 320, 640, 1280, the answer is that wide);
without it the picture is the stream's own size. A protected stream has none (404
``protected_stream``): its segments are encrypted.
"""

from __future__ import annotations

import functools
import re
import time
from typing import TYPE_CHECKING
from urllib.parse import parse_qs

from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response

from mediaplane.http import ApiError, error_body
from mediaplane.live import LivePlayback, session_dir
from mediaplane.media import (
    ManifestError,
    MediaError,
    MediaPlaylist,
    extract_thumbnail,
    snap_width,
)

from ._thumbs import _limiter

if TYPE_CHECKING:
    from pathlib import Path

    from starlette.types import Scope

    from mediaplane.runtime import Runtime

__all__ = ["LiveThumbnails"]

#: Seconds a live picture is reused (also its Cache-Control max-age).
CACHE_SECONDS = 2.0
#: The top video rung's folder in a live session.
VIDEO_RUNG = "video"
_MAX_CACHED = 256
_INIT = re.compile(r"^init(-\d{1,6})?\.mp4$")


def _error(status: int, code: str, message: str) -> Response:
    return JSONResponse(
        error_body(code, message), status_code=status, headers={"Cache-Control": "no-store"}
    )


def _width(scope: Scope) -> int | None:
    """The requested width snapped up to a VOD thumbnail width; None for the stream's own.
    :class:`ValueError` for one that is not a number in 16-1920."""
    values = parse_qs(scope["query_string"].decode("latin-1")).get("width")
    if not values:
        return None
    width = int(values[0]) if values[0].isdigit() and len(values[0]) <= 5 else -1
    if not 16 <= width <= 1920:
        raise ValueError("width must be a whole number from 16 to 1920")
    return snap_width(width)


def _newest_segment(folder: Path) -> tuple[int, str] | None:
    """The msn of the rung's newest complete segment and the init segment it needs (the
    EXT-X-MAP in force: after a reconnect, the slate or a backup, ``init-{n}.mp4``), from
    its media playlist."""
    try:
        playlist = MediaPlaylist.parse((folder / "index.m3u8").read_bytes())
    except (FileNotFoundError, ManifestError):
        return None
    newest, init = None, "init.mp4"
    for i, seg in enumerate(playlist.segments):
        if seg.map is not None:
            init = seg.map.uri
        if seg.uri:
            newest = ((playlist.media_sequence or 0) + i, init)
    if newest is None or not _INIT.match(newest[1]):
        return None
    return newest


class LiveThumbnails:
    """The recent pictures of this process's live streams, and how they are made."""

    def __init__(self) -> None:
        self._cache: dict[str, tuple[float, bytes]] = {}

    async def answer(self, scope: Scope, live: LivePlayback) -> Response:
        rt: Runtime = scope["app"].state.runtime
        if live.session_id is None:
            return _error(404, "not_live", "The live stream is not live now.")
        if live.protection != "none":  # its segments are encrypted: no picture from them
            return _error(404, "protected_stream", "A protected live stream has no thumbnail.")
        try:
            width = _width(scope)
        except ValueError as exc:
            return _error(400, "bad_request", str(exc))
        folder = session_dir(rt.settings, live.live_stream_id, live.session_id) / VIDEO_RUNG
        newest = await run_in_threadpool(_newest_segment, folder)
        if newest is None:
            return _error(404, "not_live", "The live stream has no picture yet; try again soon.")
        msn, init = newest
        key = f"live/{live.session_id}/{msn}/{width or 0}"
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit is not None and hit[0] > now:
            return self._jpeg(hit[1])
        make = functools.partial(self._make, rt, folder, init, msn, width)
        try:
            jpeg = await _limiter(scope["app"], rt).run(key, None, make)
        except ApiError as exc:  # every slot busy: 503 with Retry-After, as VOD
            return JSONResponse(
                error_body(exc.code, exc.message), status_code=exc.status, headers=exc.headers
            )
        except (FileNotFoundError, MediaError):  # the segment left the window meanwhile
            return _error(503, "live_unavailable", "No picture right now; try again soon.")
        if len(self._cache) >= _MAX_CACHED:
            self._cache = {k: v for k, v in self._cache.items() if v[0] > now}
        self._cache[key] = (now + CACHE_SECONDS, jpeg)
        return self._jpeg(jpeg)

    @staticmethod
    def _make(rt: Runtime, folder: Path, init: str, msn: int, width: int | None) -> bytes:
        """The first frame (a keyframe) of segment ``msn``, ``width`` wide (or as is)."""
        data = (folder / init).read_bytes() + (folder / f"{msn}.m4s").read_bytes()
        return extract_thumbnail(rt.toolchain, rt.settings, data, 0.0, width or -1)

    @staticmethod
    def _jpeg(jpeg: bytes) -> Response:
        cache = f"public, max-age={int(CACHE_SECONDS)}"
        return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": cache})
