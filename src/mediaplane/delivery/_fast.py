"""The lean path for playback: cached manifests and local segments without the framework.

Measured with wrk at 64 connections (bench/origin.py), a media playlist through FastAPI cost
a thread-pool hop (sync route), dependency injection, a Response object and a SHA-1 of the
body per request: 2k requests/s against nginx's 87k on the same machine. Manifests and
segments are what every viewer asks for several times a second, so :class:`PlayOrigin`
answers them in the event loop from what is already in memory:

* the playback lookup comes from the origin's short-lived cache (a miss, a refusal, an error
  or a growing presentation falls through to the FastAPI route, which does the database work
  in a thread, fills the cache and answers with the usual error shape);
* manifests are rendered once per asset version with their ETag (:func:`._service.master_text`,
  shared with the routes, so bodies, headers, 304s and HEAD are the same);
* a segment in the local store goes to Granian's file path (``http.response.pathsend``) after
  one ``stat`` in the loop (metadata of a local file: cheaper than a thread hop), with the
  headers :class:`FileResponse` would send, kept per file; ranges, servers without pathsend
  and remote stores take the same :class:`FileResponse` / route code as before.
* a signed playback id's media playlists and segments are answered here when their carry
  token checks (:func:`._service.carried_query`: one HMAC); its master playlist and MPD take
  the route (the playback token's signing key may need a database read).

It runs *in front of* the app's middleware stack (each Starlette layer cost a coroutine and
a ``send`` wrapper per request, as much as the lookup itself), so it does what those layers
do for the requests it answers: the CORS headers (``cors``: the simple-response headers the
CORS middleware adds when a request has an ``Origin``, and its ``Vary: Origin``), the request
id and the latency histogram under the route's label (an :class:`Observer`). Everything it
does not answer, and everything that raises before an answer starts, goes to the app.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from stat import S_ISREG
from typing import TYPE_CHECKING, Any, Protocol

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import FileResponse

from ._access import check_playback
from ._origin import router
from ._service import (
    Playable,
    Text,
    cached_playable,
    carried_query,
    master_text,
    media_text,
    mpd_text,
    segment_object,
)

if TYPE_CHECKING:
    from os import stat_result

    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from mediaplane.runtime import Runtime

__all__ = ["Observer", "PlayOrigin"]

_ROUTES = {r.name: r.path for r in router.routes if isinstance(r, APIRoute)}
_Headers = list[tuple[bytes, bytes]]
#: A local segment to send: its file, that file's stat, media type and Cache-Control.
_File = tuple[Path, "stat_result", str, str]
#: Segments whose file path and FileResponse headers are kept (per key; per path, mtime, size).
_CACHE_SIZE = 4096


class Observer(Protocol):
    """What the request middleware does per request: a request id and the latency metric."""

    def request_id(self, scope: Scope) -> bytes: ...

    def observe(self, method: str, route: str, status: int, seconds: float) -> None: ...


class PlayOrigin:
    """Pure ASGI app in front of ``app``: answers cached /play manifest and segment requests."""

    def __init__(self, app: ASGIApp, observer: Observer, cors: Sequence[tuple[bytes, bytes]]):
        self.app = app
        self.observer = observer
        self.cors = list(cors)
        self._paths: dict[str, Path] = {}
        self._file_headers: dict[tuple[str, int, int, str, str], _Headers] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] in ("GET", "HEAD")
            and scope["path"].startswith("/play/")
        ):
            started = time.perf_counter()
            answered = await self._serve(scope, receive, send)
            if answered is not None:
                route, status = answered
                self.observer.observe(scope["method"], route, status, time.perf_counter() - started)
                return
        await self.app(scope, receive, send)

    def _extra(self, scope: Scope, origin: bool) -> _Headers:
        """The headers the CORS and request middleware would add to this answer."""
        extra = [*self.cors] if origin else []
        extra.append((b"vary", b"Origin"))
        extra.append((b"x-request-id", self.observer.request_id(scope)))
        return extra

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> tuple[str, int] | None:
        """Answer the request and return (route, status), or return None having sent nothing."""
        parts = scope["path"][6:].split("/")
        p = cached_playable(parts[0])
        if p is None:
            return None
        rt: Runtime = scope["app"].state.runtime
        query = ""  # signed ids: media playlists and segments with a good carry token only
        if p.carries and not (query := carried_query(rt, p, scope["query_string"], parts)):
            return None  # the route answers: admission, or the refusal's reason
        request = Request(scope)
        text: Text | None = None
        try:
            check_playback(request, rt.settings, moderation=p.moderation, rights=p.rights)
            if len(parts) == 2 and parts[1] == "master.m3u8":
                route, text = "hls_master", master_text(p)
            elif len(parts) == 2 and parts[1] == "manifest.mpd":
                route, text = "dash_mpd", mpd_text(p)
            elif len(parts) == 3 and parts[2] == "media.m3u8":
                route, text = "hls_media", media_text(p, parts[1], query)
            elif len(parts) == 3:
                route, file = "segment", self._local_segment(rt, p, parts[1], parts[2])
                if file is None:
                    return None  # a remote store: the route streams it
            else:
                return None
        except Exception:  # the app answers: its route raises this again, as an error answer
            return None
        extra = self._extra(scope, "origin" in request.headers)
        if text is not None:
            return _ROUTES[route], await _send_text(request, send, text, extra)
        assert file is not None  # the segment branch returned on None
        return _ROUTES[route], await self._send_file(scope, receive, send, file, extra)

    def _local_segment(self, rt: Runtime, p: Playable, rendition: str, name: str) -> _File | None:
        """A segment's file and its stat now, or None in a remote store; raises as the route.

        The store resolves a key to its file (every path component, for symlinks that leave
        the root): done once per key here, then one ``stat`` per request.
        """
        key, media_type, cache = segment_object(p, rendition, name)
        path = self._paths.get(key)
        if path is None:
            path = rt.store.local_path(key)
            if path is None:
                return None
            if len(self._paths) >= _CACHE_SIZE:
                self._paths.clear()
            self._paths[key] = path
        st = path.stat()
        if not S_ISREG(st.st_mode):
            raise IsADirectoryError(str(path))
        return path, st, media_type, cache

    async def _send_file(
        self, scope: Scope, receive: Receive, send: Send, file: _File, extra: _Headers
    ) -> int:
        """Send a local segment: straight to pathsend when it is all of it, else FileResponse."""
        path, st, media_type, cache = file
        if (
            scope["method"] == "GET"
            and "http.response.pathsend" in scope.get("extensions", {})
            and not any(k == b"range" for k, _ in scope["headers"])
        ):
            headers = self._headers_of(file)
            await send({"type": "http.response.start", "status": 200, "headers": headers + extra})
            await send({"type": "http.response.pathsend", "path": str(path)})
            return 200
        status = 500

        async def send_extra(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), *extra]
            await send(message)

        await _file_response(file)(scope, receive, send_extra)
        return status

    def _headers_of(self, file: _File) -> _Headers:
        """FileResponse's headers for ``file`` (an ETag and a date each time: work to keep)."""
        path, st, media_type, cache = file
        key = (str(path), st.st_mtime_ns, st.st_size, media_type, cache)
        headers = self._file_headers.get(key)
        if headers is None:
            headers = list(_file_response(file).raw_headers)
            if len(self._file_headers) >= _CACHE_SIZE:
                self._file_headers.clear()
            self._file_headers[key] = headers
        return headers


def _file_response(file: _File) -> FileResponse:
    """The route's answer for a local segment (headers, ranges, HEAD and all)."""
    path, st, media_type, cache = file
    return FileResponse(
        path, media_type=media_type, headers={"Cache-Control": cache}, stat_result=st
    )


async def _send_text(request: Request, send: Send, t: Text, extra: _Headers) -> int:
    """Send ``t`` as :func:`._origin.send_text` would: 304 on a matching ETag, HEAD bodiless."""
    headers: _Headers = [
        (b"cache-control", t.cache.encode()),
        (b"etag", t.etag.encode()),
    ]
    body = b""
    status = 200
    if request.headers.get("if-none-match") == t.etag:
        status = 304
    else:
        headers.append((b"content-length", str(len(t.body)).encode()))
        headers.append((b"content-type", t.media_type.encode()))
        if request.method != "HEAD":
            body = t.body
    start: dict[str, Any] = {
        "type": "http.response.start",
        "status": status,
        "headers": headers + extra,
    }
    await send(start)
    await send({"type": "http.response.body", "body": body})
    return status
