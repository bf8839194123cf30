"""Live playback: ``/play/{live playback id}/…`` from the live session's directory.

:class:`LiveOrigin` runs in front of the VOD origin. A playback id it does not know as a live
one (looked up once per :data:`LOOKUP_TTL` at most, in a thread) passes through untouched, so VOD
playback pays one dictionary lookup. For a live id it serves:

* ``master.m3u8``: the current session's multivariant playlist, its URIs moved under the
  session (``{session}/{rung}/index.m3u8``), so every segment URL names its session and a
  segment is the same bytes for as long as it exists (cacheable as immutable);
* ``{session}/{rung}/index.m3u8``: the LL-HLS media playlist, with blocking reload
  (``_HLS_msn``/``_HLS_part``): the request waits, without a thread, until the packager has
  written that part (one poller per playlist, however many players wait on it); an ``msn``
  more than two past the live edge is a 400, as RFC 8216bis says;
* ``manifest.mpd``: the session's DASH MPD (dynamic while live, static once ended), its
  segment templates moved under the session like the HLS URIs, with a ``UTCTiming`` of the
  origin's clock at the moment of the answer (players align their clock with it);
* ``{session}/{rung}/init.mp4``, ``{msn}.m4s``, ``{msn}.{part}.m4s``: the files.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs

import structlog
from starlette.responses import FileResponse, JSONResponse, Response

from mediaplane.live import LivePlayback, resolve_live_playback, segment_target, session_dir
from mediaplane.media import MPD, Descriptor, ManifestError, MasterPlaylist

if TYPE_CHECKING:
    from collections.abc import Sequence

    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from mediaplane.runtime import Runtime

__all__ = ["LiveOrigin"]

log = structlog.get_logger("mediaplane.delivery")

#: How long a playback id is known as live (or as not live) before it is looked up again.
LOOKUP_TTL = 2.0
#: Live playlists change every part: caches may keep one for a second at most.
PLAYLIST_CACHE = "public, max-age=1"
#: A segment or part URL names its session: its bytes never change.
SEGMENT_CACHE = "public, max-age=31536000, immutable"
HLS_TYPE = "application/vnd.apple.mpegurl"
DASH_TYPE = "application/dash+xml"
#: DASH-IF's scheme for a clock value carried in the MPD itself.
UTC_DIRECT = "urn:mpeg:dash:utc:direct:2014"
#: How often a waiting playlist checks the packager's state file.
POLL_SECONDS = 0.01
#: A blocking reload waits at most this many target durations, then gets a 503 (RFC 8216bis
#: 6.2.5.2: a server that cannot answer within three target durations SHOULD say so).
BLOCK_TARGETS = 3

_ID = re.compile(r"^[A-Za-z0-9]{1,64}$")
_NAME = re.compile(r"^[a-z0-9_]{1,32}$")
_FILE = re.compile(r"^(init(-\d{1,6})?\.mp4|\d{1,9}\.m4s|\d{1,9}\.\d{1,4}\.m4s)$")
_CACHE_SIZE = 4096


@dataclass(frozen=True)
class _State:
    """What the packager says it has written: the newest segment number and its last part."""

    msn: int
    part: int
    ended: bool

    def has(self, msn: int, part: int | None) -> bool:
        """Whether the playlist already holds part ``part`` of segment ``msn`` (or, without
        a part, the whole segment ``msn``)."""
        if self.ended or self.msn > msn:
            return True
        return part is not None and self.msn == msn and self.part >= part


def _read_state(path: Path) -> _State | None:
    try:
        raw = json.loads(path.read_bytes())
        part = raw.get("part")  # null: a standard-latency stream has no parts
        return _State(int(raw["msn"]), -1 if part is None else int(part), bool(raw.get("ended")))
    except (OSError, ValueError, KeyError, TypeError):
        return None


class _Watch:
    """One poller for one media playlist's state file, shared by every player waiting."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.mtime = 0
        self.state: _State | None = None
        self.changed = asyncio.Event()
        self.waiters = 0
        self.task: asyncio.Task[None] | None = None

    def refresh(self) -> None:
        try:
            mtime = self.path.stat().st_mtime_ns
        except OSError:
            return
        if mtime != self.mtime:
            self.mtime = mtime
            self.state = _read_state(self.path) or self.state
            self.changed.set()
            self.changed = asyncio.Event()

    async def _poll(self) -> None:
        while self.waiters:
            await asyncio.sleep(POLL_SECONDS)
            self.refresh()
        self.task = None

    async def until(self, msn: int, part: int | None, wait: float) -> _State | None:
        """The state once it holds (msn, part), or what there is after ``wait`` seconds."""
        self.refresh()
        deadline = time.monotonic() + wait
        self.waiters += 1
        try:
            if self.task is None:
                self.task = asyncio.get_running_loop().create_task(self._poll())
            while not (self.state is not None and self.state.has(msn, part)):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                try:
                    await asyncio.wait_for(self.changed.wait(), left)
                except TimeoutError:
                    break
            return self.state
        finally:
            self.waiters -= 1


def _error(status: int, code: str, message: str) -> Response:
    return JSONResponse(
        {"error": {"code": code, "message": message}},
        status_code=status,
        headers={"Cache-Control": "no-store"},
    )


def _text(body: bytes, method: str, media_type: str = HLS_TYPE) -> Response:
    headers = {"Cache-Control": PLAYLIST_CACHE}
    if method == "HEAD":
        headers["Content-Length"] = str(len(body))
        return Response(status_code=200, headers=headers, media_type=media_type)
    return Response(body, headers=headers, media_type=media_type)


def _master(body: bytes, session_id: str) -> bytes:
    """The packager's multivariant playlist with every URI under the session."""
    master = MasterPlaylist.parse(body)
    return bytes(
        replace(
            master,
            variants=tuple(replace(v, uri=f"{session_id}/{v.uri}") for v in master.variants),
            media=tuple(
                replace(m, uri=f"{session_id}/{m.uri}") if m.uri else m for m in master.media
            ),
        )
    )


def _mpd(body: bytes, session_id: str) -> bytes:
    """The packager's MPD with its segment templates under the session and the origin's
    clock now as UTCTiming."""
    mpd = MPD.parse(body)
    periods = []
    for period in mpd.periods:
        sets = []
        for aset in period.adaptation_sets:
            t = aset.segment_template
            if t is not None:
                t = replace(
                    t,
                    media=t.media and f"{session_id}/{t.media}",
                    initialization=t.initialization and f"{session_id}/{t.initialization}",
                )
            sets.append(replace(aset, segment_template=t))
        periods.append(replace(period, adaptation_sets=tuple(sets)))
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return bytes(replace(mpd, periods=tuple(periods), utc_timing=(Descriptor(UTC_DIRECT, now),)))


def _int_arg(query: dict[str, list[str]], name: str) -> int | None:
    values = query.get(name)
    if not values:
        return None
    if not values[0].isdigit() or len(values[0]) > 9:
        raise ValueError(name)
    return int(values[0])


class LiveOrigin:
    """Pure ASGI app in front of ``app``: answers /play requests for live playback ids,
    with the CORS headers (``cors``) the middleware it bypasses would add."""

    def __init__(self, app: ASGIApp, cors: Sequence[tuple[bytes, bytes]]) -> None:
        self.app = app
        self.cors = list(cors)
        self._known: dict[str, tuple[float, LivePlayback | None]] = {}
        self._watches: dict[Path, _Watch] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] in ("GET", "HEAD")
            and scope["path"].startswith("/play/")
        ):
            parts = scope["path"][6:].split("/")
            live = await self._lookup(scope, parts[0])
            if live is not None:
                response = await self._answer(scope, live, parts[1:])
                await response(scope, receive, self._with_cors(scope, send))
                return
        await self.app(scope, receive, send)

    def _with_cors(self, scope: Scope, send: Send) -> Send:
        extra = [(b"vary", b"Origin")]
        if any(k == b"origin" for k, _ in scope["headers"]):
            extra += self.cors

        async def sender(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *extra]
            await send(message)

        return sender

    async def _lookup(self, scope: Scope, playback_id: str) -> LivePlayback | None:
        if not _ID.match(playback_id):
            return None
        now = time.monotonic()
        hit = self._known.get(playback_id)
        if hit is not None and hit[0] > now:
            return hit[1]
        rt: Runtime = scope["app"].state.runtime
        live = await asyncio.to_thread(resolve_live_playback, rt, playback_id)
        if len(self._known) >= _CACHE_SIZE:
            self._known.clear()
        ttl = min(LOOKUP_TTL, rt.settings.playback_cache_seconds)
        self._known[playback_id] = (now + ttl, live)
        return live

    async def _answer(self, scope: Scope, live: LivePlayback, rest: list[str]) -> Response:
        rt: Runtime = scope["app"].state.runtime
        method = scope["method"]
        if live.policy != "public":
            return _error(
                403, "signed_live", "Signed live playback ids are not served yet; use a public one."
            )
        if rest in (["master.m3u8"], ["manifest.mpd"]):
            if live.session_id is None:
                return _error(404, "not_live", "The live stream is not live now.")
            path = session_dir(rt.settings, live.live_stream_id, live.session_id) / rest[0]
            hls = rest[0] == "master.m3u8"
            try:
                body = (_master if hls else _mpd)(path.read_bytes(), live.session_id)
            except FileNotFoundError:
                return _error(404, "not_live", "The live stream has no media yet; try again soon.")
            except ManifestError:
                log.exception("live.manifest_unreadable", live_stream_id=live.live_stream_id)
                return _error(503, "live_unavailable", "The live stream cannot be played now.")
            return _text(body, method, HLS_TYPE if hls else DASH_TYPE)
        if len(rest) != 3 or not _ID.match(rest[0]) or not _NAME.match(rest[1]):
            return _error(404, "not_found", "No such live playback path.")
        session_id, rung, name = rest
        folder = session_dir(rt.settings, live.live_stream_id, session_id) / rung
        if name == "index.m3u8":
            return await self._media_playlist(scope, folder, method, live)
        if not _FILE.match(name):
            return _error(404, "not_found", "No such live playback path.")
        path = folder / name
        if not path.is_file():
            return _error(404, "not_found", "That segment is not (or no longer) available.")
        media_type = "video/mp4" if name.startswith("init") else "video/iso.segment"
        return FileResponse(path, media_type=media_type, headers={"Cache-Control": SEGMENT_CACHE})

    async def _media_playlist(
        self, scope: Scope, folder: Path, method: str, live: LivePlayback
    ) -> Response:
        query = parse_qs(scope["query_string"].decode("latin-1"))
        try:
            msn, part = _int_arg(query, "_HLS_msn"), _int_arg(query, "_HLS_part")
        except ValueError as exc:
            return _error(400, "bad_request", f"{exc} must be a whole number.")
        if part is not None and msn is None:
            return _error(400, "bad_request", "_HLS_part needs _HLS_msn.")
        if msn is not None:
            watch = self._watch(folder / "state.json")
            watch.refresh()
            if watch.state is not None and msn > watch.state.msn + 2:
                return _error(
                    400, "msn_too_far", "_HLS_msn is more than two segments past the live edge."
                )
            state = await watch.until(msn, part, BLOCK_TARGETS * segment_target(live.latency_mode))
            if state is None or not state.has(msn, part):
                return _error(503, "live_stalled", "The live stream has not reached that part.")
        try:
            body = (folder / "index.m3u8").read_bytes()
        except FileNotFoundError:
            return _error(404, "not_found", "No such live rendition (yet).")
        return _text(body, method)

    def _watch(self, path: Path) -> _Watch:
        watch = self._watches.get(path)
        if watch is None:
            if len(self._watches) >= _CACHE_SIZE:
                self._watches = {p: w for p, w in self._watches.items() if w.waiters}
            watch = self._watches[path] = _Watch(path)
        return watch
