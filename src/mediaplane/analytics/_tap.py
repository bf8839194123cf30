"""CMCD at the origin: :class:`CmcdTap` sits in front of every ``/play/`` path (the lean
VOD path, the live origin and the routes behind them) and hands each request that carries
CMCD to the lake's buffer, unparsed.

Per request without CMCD it costs a substring test on the query string and a look at the
header names; a request with CMCD costs a tuple appended under a lock and a wrapped
``send`` (to note the answer's status). Parsing (:func:`._cmcd.cmcd_of_request`) happens
when the buffer is written, off the request path; no database is touched.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from ._lake import lake_of

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["CmcdTap"]

_MANIFESTS = {"master.m3u8": "master", "manifest.mpd": "mpd", "media.m3u8": "media"}
_MANIFESTS["index.m3u8"] = "media"  # live media playlists
#: CMCD headers kept of one request at most, and the length of a path part kept.
_MAX_HEADERS = 8
_MAX_PART = 128


class CmcdTap:
    """Pure ASGI app in front of ``app``: records the CMCD of ``/play/`` requests."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/play/"):
            await self.app(scope, receive, send)
            return
        query: bytes = scope["query_string"]
        if b"CMCD=" not in query:
            for name, _ in scope["headers"]:
                if name[:5] == b"cmcd-":
                    break
            else:  # no CMCD: the usual request costs this loop
                await self.app(scope, receive, send)
                return
        headers = [(k, v) for k, v in scope["headers"] if k[:5] == b"cmcd-"]
        received = time.time_ns() // 1_000_000
        parts = scope["path"][6:].split("/")
        last = parts[-1][:_MAX_PART]
        kind = _MANIFESTS.get(last, "segment") if len(parts) > 1 else "other"
        rendition = parts[-2][:_MAX_PART] if len(parts) >= 3 else None
        lake = lake_of(scope["app"].state.runtime)
        playback_id = parts[0][:64]

        async def noting(message: Message) -> None:
            if message["type"] == "http.response.start":
                lake.capture(
                    (
                        received,
                        playback_id,
                        kind,
                        rendition,
                        last if kind == "segment" else None,
                        int(message["status"]),
                        query,
                        headers[:_MAX_HEADERS],
                    )
                )
            await send(message)

        await self.app(scope, receive, noting)
