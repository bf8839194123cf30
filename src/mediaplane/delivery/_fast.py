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
  one ``stat`` in the loop (metadata of a local file: cheaper than a thread hop); ranges,
  HEAD and remote stores take the same :class:`FileResponse` / route code as before.
* a signed playback id's media playlists and segments are answered here when their carry
  token checks (:func:`._service.carried_query`: one HMAC); its master playlist and MPD take
  the route (the playback token's signing key may need a database read).

It sits inside the CORS middleware (CORS headers unchanged) and inside the request
middleware (request ids, latency histogram): ``scope["route"]`` is set to the route it
stands in for, so metrics keep their route label.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import FileResponse

from mediaplane.errors import NotFound
from mediaplane.http import ApiError
from mediaplane.storage import StorageError

from ._access import check_playback
from ._origin import router
from ._service import (
    Text,
    cached_playable,
    carried_query,
    master_text,
    media_text,
    mpd_text,
    segment,
)

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send

    from mediaplane.runtime import Runtime

__all__ = ["PlayOrigin"]

_ROUTES = {r.name: r for r in router.routes if isinstance(r, APIRoute)}


class PlayOrigin:
    """Pure ASGI middleware answering cached /play manifest and segment requests."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] in ("GET", "HEAD")
            and scope["path"].startswith("/play/")
            and await self._serve(scope, receive, send)
        ):
            return
        await self.app(scope, receive, send)

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> bool:
        """Answer the request and return True, or return False having sent nothing."""
        parts = scope["path"][6:].split("/")
        p = cached_playable(parts[0])
        if p is None:
            return False
        rt: Runtime = scope["app"].state.runtime
        query = ""  # signed ids: media playlists and segments with a good carry token only
        if p.signed and not (query := carried_query(rt, p, scope["query_string"], parts)):
            return False  # the route answers: admission, or the refusal's reason
        request = Request(scope)
        try:
            check_playback(request, rt.settings, moderation=p.moderation, rights=p.rights)
            if len(parts) == 2 and parts[1] == "master.m3u8":
                route, text = "hls_master", master_text(p)
            elif len(parts) == 2 and parts[1] == "manifest.mpd":
                route, text = "dash_mpd", mpd_text(p)
            elif len(parts) == 3 and parts[2] == "media.m3u8":
                route, text = "hls_media", media_text(p, parts[1], query)
            elif len(parts) == 3:
                seg = segment(rt, p, parts[1], parts[2])
                if seg.local is None:
                    return False  # a remote store: the route streams it
                response = FileResponse(
                    seg.local,
                    media_type=seg.media_type,
                    headers={"Cache-Control": seg.cache},
                    stat_result=seg.local.stat(),
                )
                scope["route"] = _ROUTES["segment"]
                await response(scope, receive, send)
                return True
            else:
                return False
        except (ApiError, NotFound, StorageError, OSError):
            return False  # the route answers with the error, in the usual shape
        scope["route"] = _ROUTES[route]
        await _send_text(request, send, text)
        return True


async def _send_text(request: Request, send: Send, t: Text) -> None:
    """Send ``t`` as :func:`._origin.send_text` would: 304 on a matching ETag, HEAD bodiless."""
    headers: list[tuple[bytes, bytes]] = [
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
    start: dict[str, Any] = {"type": "http.response.start", "status": status, "headers": headers}
    await send(start)
    await send({"type": "http.response.body", "body": body})
