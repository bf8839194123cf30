"""Live playback: ``/play/{live playback id}/…`` from the live session's directory.

:class:`LiveOrigin` runs in front of the VOD origin. A playback id it does not know as a live
one passes through untouched, so VOD playback pays a dictionary lookup: one the VOD origin
holds (its lookup cache) is never looked up here; another is looked up once, in a thread, and
known as not live for :data:`NOT_LIVE_TTL` (a live one for :data:`LOOKUP_TTL`). For a live
id it serves:

* ``master.m3u8``: the current session's multivariant playlist, its URIs moved under the
  session (``{session}/{rung}/index.m3u8``), so every segment URL names its session and a
  segment is the same bytes for as long as it exists (cacheable as immutable);
* ``{session}/{rung}/index.m3u8``: the LL-HLS media playlist, with blocking reload
  (``_HLS_msn``/``_HLS_part``): the request waits, without a thread, until the packager has
  written that part (one poller per playlist, however many players wait on it); an ``msn``
  more than two past the live edge is a 400, as RFC 8216bis says; with ``_HLS_skip=YES``
  (or ``v2``) a Playlist Delta Update (:mod:`._live_delta`), made once per playlist version
  and kept (its file's inode, size and mtime say which), whatever players ask for it;
* ``manifest.mpd``: the session's DASH MPD (dynamic while live, static once ended), its
  segment templates moved under the session like the HLS URIs, with a ``UTCTiming`` of the
  origin's clock at the moment of the answer (players align their clock with it);
* ``{session}/{rung}/init.mp4``, ``{msn}.m4s``, ``{msn}.{part}.m4s``: the files. In a
  low-latency stream, ``{msn}.m4s`` of the segment being written (or of the next one) is
  answered at once and sent as it is written (HTTP chunked transfer: each part file as soon
  as the packager wrote it, then the rest of the completed segment), which is what the
  low-latency DASH MPD's ``availabilityTimeComplete="false"`` promises dash.js; the waits
  use the same shared poller as blocking reloads, no thread per request. A part is read
  once per file into memory and answered from there, in the event loop, to every player
  (the players a blocking reload wakes together fetch the same part at once).

A signed live playback id plays like a signed VOD one (:mod:`._access`): the master and the
MPD need a playback token (``?token=``, use ``v``; the same refusals, the same stream
count), and every URL they and the media playlists render carries the carry token
(``?st=``), checked on each media playlist and file with one HMAC, no database. Such
answers are ``private`` (no shared cache keeps them).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from collections import OrderedDict
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs

import structlog
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse

from mediaplane.http import ApiError, error_body
from mediaplane.live import (
    LICENCE_PLACEHOLDER,
    LivePlayback,
    resolve_live_playback,
    segment_target,
    session_dir,
)
from mediaplane.media import MPD, Descriptor, ManifestError, MasterPlaylist

from ._live_delta import SKIP_VALUES, delta_update
from ._live_thumbs import LiveThumbnails
from ._service import admit_live, cached_playable, live_carried, live_licence_url, renew_carried

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence

    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from mediaplane.runtime import Runtime

__all__ = ["LiveOrigin"]

log = structlog.get_logger("mediaplane.delivery")

#: How long a playback id is known as live before it is looked up again.
LOOKUP_TTL = 2.0
#: How long one is known as not live: ids are random and handed out when made, so an id
#: seen before it was a live one's is a guess; this only bounds the cache's staleness.
NOT_LIVE_TTL = 60.0
#: Live playlists change every part: caches may keep one for a second at most.
PLAYLIST_CACHE = "public, max-age=1"
#: A segment or part URL names its session: its bytes never change.
SEGMENT_CACHE = "public, max-age=31536000, immutable"
#: A signed id's playlists and files: for the viewer whose token they carry only.
SIGNED_PLAYLIST_CACHE = "private, max-age=1"
SIGNED_SEGMENT_CACHE = "private, max-age=60"
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
_FILE = re.compile(r"^(init(-\d{1,6})?(-k\d{1,6})?\.mp4|\d{1,9}\.m4s|\d{1,9}\.\d{1,4}\.m4s)$")
_SEGMENT = re.compile(r"^(\d{1,9})\.m4s$")
_PART = re.compile(r"^\d{1,9}\.\d{1,4}\.m4s$")
_PLACEHOLDER = LICENCE_PLACEHOLDER.encode()
#: A part answered from memory is at most this big (a larger one is a file answer), and
#: the parts kept for the players that fetch them next at most this much in all.
PART_MAX_BYTES = 4 << 20
PART_CACHE_BYTES = 64 << 20
#: A segment being written is answered without a length and not kept by shared caches
#: until it is complete (a stalled one ends in a cut connection).
GROWING_CACHE = "no-cache"
_CACHE_SIZE = 4096
_URI_ATTR = re.compile(rb'URI="([^"]*)"')
_MANIFESTS = (["master.m3u8"], ["manifest.mpd"])


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


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    """The API's error shape (:func:`mediaplane.http.error_body`), never cached."""
    return JSONResponse(
        error_body(code, message),
        status_code=status,
        headers={"Cache-Control": "no-store", **(headers or {})},
    )


def _refusal(exc: ApiError) -> Response:
    """An :class:`ApiError` of the playback checks (403, 404 private, 429) as a response."""
    return _error(exc.status, exc.code, exc.message, exc.headers)


def _text(
    body: bytes, method: str, media_type: str = HLS_TYPE, cache: str = PLAYLIST_CACHE
) -> Response:
    headers = {"Cache-Control": cache}
    if method == "HEAD":
        headers["Content-Length"] = str(len(body))
        return Response(status_code=200, headers=headers, media_type=media_type)
    return Response(body, headers=headers, media_type=media_type)


def _master(body: bytes, session_id: str, query: str = "", cap: int | None = None) -> bytes:
    """The packager's multivariant playlist with every URI under the session (and carrying
    ``query``), without the variants above ``cap`` pixels high (the lowest stays)."""
    master = MasterPlaylist.parse(body)
    variants = master.variants
    if cap is not None:
        kept = tuple(v for v in variants if v.resolution is None or v.resolution[1] <= cap)
        variants = kept or (min(variants, key=lambda v: v.resolution[1] if v.resolution else 0),)
    return bytes(
        replace(
            master,
            variants=tuple(replace(v, uri=f"{session_id}/{v.uri}{query}") for v in variants),
            media=tuple(
                replace(m, uri=f"{session_id}/{m.uri}{query}") if m.uri else m for m in master.media
            ),
        )
    )


def _rung_heights(master: Path) -> dict[str, int]:
    """The picture height of each video rung the session's master playlist lists (by the
    rung's folder name); empty when it cannot be read."""
    try:
        mtime = master.stat().st_mtime_ns
        hit = _HEIGHTS.get(master)
        if hit is not None and hit[0] == mtime:
            return hit[1]
        variants = MasterPlaylist.parse(master.read_bytes()).variants
    except (OSError, ManifestError):
        return {}
    heights = {v.uri.split("/", 1)[0]: v.resolution[1] for v in variants if v.resolution}
    if len(_HEIGHTS) >= _CACHE_SIZE:
        _HEIGHTS.clear()
    _HEIGHTS[master] = (mtime, heights)
    return heights


_HEIGHTS: dict[Path, tuple[int, dict[str, int]]] = {}


def _within(heights: dict[str, int], rung: str, cap: int) -> bool:
    """Whether a token capped at ``cap`` pixels may play ``rung``: not a video rung, or one
    no higher, or the lowest (which the capped master keeps when all are higher)."""
    height = heights.get(rung)
    return height is None or height <= cap or height == min(heights.values())


def _carrying(body: bytes, query: str) -> bytes:
    """A media playlist whose every URI (segments, parts, the map, the preload hint, the
    rendition reports) carries ``query``: a signed id's carry token."""
    if not query:
        return body
    q = query.encode()
    lines = body.split(b"\n")
    for i, line in enumerate(lines):
        if line.startswith(b"#"):
            if b'URI="' in line and not line.startswith(b"#EXT-X-KEY:"):  # a licence URL
                lines[i] = _URI_ATTR.sub(lambda m: b'URI="' + m.group(1) + q + b'"', line)
        elif line.strip():
            lines[i] = line.rstrip(b"\r") + q
    return b"\n".join(lines)


def _xml_escaped(text: bytes) -> bytes:
    return text.replace(b"&", b"&amp;").replace(b"<", b"&lt;").replace(b'"', b"&quot;")


def _mpd(body: bytes, session_id: str, query: str = "") -> bytes:
    """The packager's MPD with its segment templates under the session (and carrying
    ``query``) and the origin's clock now as UTCTiming."""
    mpd = MPD.parse(body)
    periods = []
    for period in mpd.periods:
        sets = []
        for aset in period.adaptation_sets:
            t = aset.segment_template
            if t is not None:
                t = replace(
                    t,
                    media=t.media and f"{session_id}/{t.media}{query}",
                    initialization=t.initialization and f"{session_id}/{t.initialization}{query}",
                )
            sets.append(replace(aset, segment_template=t))
        periods.append(replace(period, adaptation_sets=tuple(sets)))
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return bytes(replace(mpd, periods=tuple(periods), utc_timing=(Descriptor(UTC_DIRECT, now),)))


class _Stalled(Exception):
    """A segment being sent stopped growing: the response is cut (not ended cleanly), so
    the player sees a failed request rather than a short segment."""


async def _segment_parts(
    watch: _Watch, folder: Path, msn: int, wait: float
) -> AsyncIterator[bytes]:
    """Segment ``msn``'s bytes as the packager writes them: part ``{msn}.{i}.m4s`` as soon
    as it exists; once ``{msn}.m4s`` (the parts' concatenation) exists, what of it was not
    sent yet, and the end. :class:`_Stalled` when no part came within ``wait`` seconds."""
    sent = 0
    index = 0
    waited = False
    while True:
        try:
            whole = (folder / f"{msn}.m4s").read_bytes()
        except FileNotFoundError:
            pass
        else:
            if len(whole) < sent:
                raise _Stalled(f"segment {msn} is shorter than its parts")
            if len(whole) > sent:
                yield whole[sent:]
            return
        try:
            data = (folder / f"{msn}.{index}.m4s").read_bytes()
        except FileNotFoundError:
            if waited:  # the state says it is there, yet neither file is
                raise _Stalled(f"segment {msn} part {index} is gone") from None
            state = await watch.until(msn, index, wait)
            if state is None or not state.has(msn, index):
                log.warning("live.segment_stalled", folder=str(folder), msn=msn, part=index)
                raise _Stalled(f"segment {msn} stopped at part {index}") from None
            waited = True
            continue
        waited = False
        index += 1
        sent += len(data)
        yield data


def _ranged(scope: Scope) -> bool:
    """Whether the request asks for a byte range (a file answer serves those)."""
    return any(k == b"range" for k, _ in scope["headers"])


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
        #: Each media playlist's delta update: (inode, size, mtime of the playlist it was
        #: made from, the delta; None when it is the whole playlist).
        self._deltas: dict[Path, tuple[tuple[int, int, int], bytes | None]] = {}
        #: The newest parts' bytes: (inode, size, mtime, the bytes), oldest first.
        self._parts: OrderedDict[Path, tuple[tuple[int, int, int], bytes]] = OrderedDict()
        self._parts_bytes = 0
        self._thumbs = LiveThumbnails()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] in ("GET", "HEAD")
            and scope["path"].startswith("/play/")
        ):
            parts = scope["path"][6:].split("/")
            live = await self._lookup(scope, parts[0])
            if live is not None:
                carry = await self._carry(scope, parts[0], live, parts[1:])
                if isinstance(carry, Response):
                    response = carry
                else:
                    response = await self._answer(scope, live, parts[1:], carry, parts[0])
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
        if cached_playable(playback_id) is not None:
            return None  # an asset's id the VOD origin holds now: no live one has it
        rt: Runtime = scope["app"].state.runtime
        live = await asyncio.to_thread(resolve_live_playback, rt, playback_id)
        self._known.pop(playback_id, None)
        while len(self._known) >= _CACHE_SIZE:  # the oldest entry goes first
            del self._known[next(iter(self._known))]
        ttl = min(LOOKUP_TTL, rt.settings.playback_cache_seconds) if live else NOT_LIVE_TTL
        self._known[playback_id] = (now + ttl, live)
        return live

    async def _carry(
        self, scope: Scope, playback_id: str, live: LivePlayback, rest: list[str]
    ) -> tuple[str, int | None] | Response:
        """What the answer's URLs carry: ``("", None)`` for a public playback id; for a
        signed one the carry token (``?st=…``) and the height cap, after the playback token
        on a master or MPD (in a thread: keys, the stream limiter) or the carry token on
        anything else (an HMAC; a thread only when its stream is due a renewal), else the
        refusal (the same codes as VOD: ``token_missing``, ``token_expired``, …)."""
        if not live.carries:
            return "", None
        rt: Runtime = scope["app"].state.runtime
        try:
            if rest in _MANIFESTS:
                signed = live.policy != "public"
                access = await asyncio.to_thread(
                    admit_live, rt, playback_id, Request(scope), signed=signed
                )
                return access.query, access.max_height
            values = parse_qs(scope["query_string"].decode("latin-1")).get("st")
            value = values[0] if values else None
            carried, due = live_carried(rt, playback_id, value)
            if due:
                await asyncio.to_thread(renew_carried, rt, carried)
            return f"?st={value}", carried.max_height or None
        except ApiError as exc:
            return _refusal(exc)

    async def _answer(
        self,
        scope: Scope,
        live: LivePlayback,
        rest: list[str],
        carry: tuple[str, int | None] = ("", None),
        playback_id: str = "",
    ) -> Response:
        rt: Runtime = scope["app"].state.runtime
        method = scope["method"]
        query, cap = carry
        playlist_cache = SIGNED_PLAYLIST_CACHE if query else PLAYLIST_CACHE
        if rest in _MANIFESTS:
            if live.session_id is None:
                return _error(404, "not_live", "The live stream is not live now.")
            path = session_dir(rt.settings, live.live_stream_id, live.session_id) / rest[0]
            hls = rest[0] == "master.m3u8"
            try:
                raw = path.read_bytes()
                if _PLACEHOLDER in raw:  # a protected publish is (or was) in it
                    licence = live_licence_url(rt, playback_id, query).encode()
                    raw = raw.replace(_PLACEHOLDER, licence if hls else _xml_escaped(licence))
                if hls:
                    body = _master(raw, live.session_id, query, cap)
                else:
                    body = _mpd(raw, live.session_id, query)
            except FileNotFoundError:
                return _error(404, "not_live", "The live stream has no media yet; try again soon.")
            except ManifestError:
                log.exception("live.manifest_unreadable", live_stream_id=live.live_stream_id)
                return _error(503, "live_unavailable", "The live stream cannot be played now.")
            return _text(body, method, HLS_TYPE if hls else DASH_TYPE, playlist_cache)
        if rest == ["thumbnail.jpg"]:  # the newest keyframe
            return await self._thumbs.answer(scope, live)
        if len(rest) != 3 or not _ID.match(rest[0]) or not _NAME.match(rest[1]):
            return _error(404, "not_found", "No such live playback path.")
        session_id, rung, name = rest
        folder = session_dir(rt.settings, live.live_stream_id, session_id) / rung
        if cap is not None and not _within(_rung_heights(folder.parent / "master.m3u8"), rung, cap):
            return _error(403, "token_max_resolution", "This rendition is above the token's cap.")
        if name == "index.m3u8":
            licence = live_licence_url(rt, playback_id, query).encode()
            return await self._media_playlist(scope, folder, method, live, query, licence)
        if not _FILE.match(name):
            return _error(404, "not_found", "No such live playback path.")
        path = folder / name
        cache = SIGNED_SEGMENT_CACHE if query else SEGMENT_CACHE
        if not path.is_file():
            growing = _SEGMENT.match(name) if live.latency_mode == "low" else None
            if growing is not None:
                answer = await self._growing_segment(folder, int(growing[1]), method, live, cache)
                if answer is not None:
                    return answer
            return _error(404, "not_found", "That segment is not (or no longer) available.")
        media_type = "video/mp4" if name.startswith("init") else "video/iso.segment"
        if method == "GET" and _PART.match(name) and not _ranged(scope):
            part = self._part(path)
            if part is not None:
                return Response(part, media_type=media_type, headers={"Cache-Control": cache})
        return FileResponse(path, media_type=media_type, headers={"Cache-Control": cache})

    def _part(self, path: Path) -> bytes | None:
        """A part's bytes, read once per file (its inode, size and mtime say which) however
        many players fetch it, in the event loop: a part is small and just written (in the
        page cache), and the players one blocking reload wakes together then do not queue
        on the thread pool (a file answer takes four trips through it). None when it is over
        :data:`PART_MAX_BYTES` or unreadable (a file answer then)."""
        try:
            with path.open("rb") as f:
                st = os.fstat(f.fileno())
                if st.st_size > PART_MAX_BYTES:
                    return None
                key = (st.st_ino, st.st_size, st.st_mtime_ns)
                hit = self._parts.get(path)
                if hit is not None and hit[0] == key:
                    return hit[1]
                body = f.read()
        except OSError:
            return None
        old = self._parts.pop(path, None)
        self._parts_bytes += len(body) - (len(old[1]) if old is not None else 0)
        self._parts[path] = (key, body)
        while self._parts_bytes > PART_CACHE_BYTES:  # the oldest parts go first
            _, (_, dropped) = self._parts.popitem(last=False)
            self._parts_bytes -= len(dropped)
        return body

    async def _media_playlist(
        self,
        scope: Scope,
        folder: Path,
        method: str,
        live: LivePlayback,
        carry: str = "",
        licence: bytes = b"",
    ) -> Response:
        query = parse_qs(scope["query_string"].decode("latin-1"))
        try:
            msn, part = _int_arg(query, "_HLS_msn"), _int_arg(query, "_HLS_part")
        except ValueError as exc:
            return _error(400, "bad_request", f"{exc} must be a whole number.")
        if part is not None and msn is None:
            return _error(400, "bad_request", "_HLS_part needs _HLS_msn.")
        skip = query.get("_HLS_skip", [None])[0]
        if skip is not None and skip not in SKIP_VALUES:
            return _error(400, "bad_request", "_HLS_skip must be YES or v2.")
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
            body = (
                self._delta(folder / "index.m3u8") if skip else (folder / "index.m3u8").read_bytes()
            )
        except FileNotFoundError:
            return _error(404, "not_found", "No such live rendition (yet).")
        if licence and b"#EXT-X-KEY:" in body:
            body = body.replace(_PLACEHOLDER, licence)
        if carry:
            return _text(_carrying(body, carry), method, cache=SIGNED_PLAYLIST_CACHE)
        return _text(body, method)

    def _delta(self, path: Path) -> bytes:
        """The delta update of the media playlist at ``path`` (the whole playlist when it
        offers none): read once per version of the file, whatever players ask for it."""
        with path.open("rb") as f:
            st = os.fstat(f.fileno())  # the packager renames a new file in: a new inode
            key = (st.st_ino, st.st_size, st.st_mtime_ns)
            hit = self._deltas.get(path)
            if hit is not None and hit[0] == key:
                return f.read() if hit[1] is None else hit[1]
            body = f.read()
        delta = delta_update(body)
        if len(self._deltas) >= _CACHE_SIZE:
            self._deltas.clear()
        self._deltas[path] = (key, None if delta is body else delta)
        return delta

    async def _growing_segment(
        self, folder: Path, msn: int, method: str, live: LivePlayback, cache: str
    ) -> Response | None:
        """Segment ``msn`` while it is being written: once its first part exists (waited
        for, if ``msn`` is the next segment), a streaming answer of its parts as they are
        written. None when ``msn`` is neither the open segment nor the next one."""
        watch = self._watch(folder / "state.json")
        watch.refresh()
        state = watch.state
        if state is None or state.ended or not state.msn <= msn <= state.msn + 1:
            return None
        wait = BLOCK_TARGETS * segment_target(live.latency_mode)
        state = await watch.until(msn, 0, wait)
        if not (folder / f"{msn}.0.m4s").is_file():
            if (folder / f"{msn}.m4s").is_file():  # complete while we waited
                return FileResponse(
                    folder / f"{msn}.m4s",
                    media_type="video/iso.segment",
                    headers={"Cache-Control": cache},
                )
            if state is None or not state.has(msn, 0):
                return _error(503, "live_stalled", "The live stream has not reached that segment.")
            return None
        growing = f"private, {GROWING_CACHE}" if cache.startswith("private") else GROWING_CACHE
        headers = {"Cache-Control": growing}
        if method == "HEAD":
            return Response(status_code=200, headers=headers, media_type="video/iso.segment")
        return StreamingResponse(
            _segment_parts(watch, folder, msn, wait),
            headers=headers,
            media_type="video/iso.segment",
        )

    def _watch(self, path: Path) -> _Watch:
        watch = self._watches.get(path)
        if watch is None:
            if len(self._watches) >= _CACHE_SIZE:
                self._watches = {p: w for p, w in self._watches.items() if w.waiters}
            watch = self._watches[path] = _Watch(path)
        return watch
