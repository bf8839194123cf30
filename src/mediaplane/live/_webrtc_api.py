"""WHIP and WHEP endpoints (RFC 9725; the WHEP draft): ``POST /whip/{stream_key}`` with the
key as ``Authorization: Bearer``, ``POST /whep/{playback_id}``; an SDP offer in
(``application/sdp``), ``201`` with the answer and the session's ``Location`` out;
``DELETE {Location}`` ends the session.

These routes check what they can without the ingest (the bearer token matches the key in
the path, the body is a small SDP offer) and relay the rest to the live ingest's
:class:`~._webrtc.WebRtcHost` over its Unix socket: the peers live where the sessions are.
Trickle ICE (``PATCH``) is not offered: ``405``, which the RFC allows (the answer carries
every candidate).
"""

from __future__ import annotations

import asyncio
import hmac
import json
from typing import Any

from fastapi import APIRouter, Depends, Request, Response

from mediaplane.http import ApiError, read_small_body, runtime_dep
from mediaplane.runtime import Runtime

from ._playback import resolve_live_playback
from ._webrtc import ANSWER_TIMEOUT, MAX_REQUEST_BYTES, MAX_SDP_BYTES, check_sdp, control_socket

__all__ = ["webrtc_router"]

webrtc_router = APIRouter(tags=["webrtc"])
_SDP = "application/sdp"
#: The relay waits this long for the ingest's answer.
RELAY_TIMEOUT = ANSWER_TIMEOUT + 5


async def _offer(request: Request) -> str:
    """The request's SDP offer: ``application/sdp`` (415 else), at most
    :data:`MAX_SDP_BYTES` (413), text that looks like SDP (400)."""
    ctype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if ctype != _SDP:
        raise ApiError(415, "unsupported_media_type", "Send the SDP offer as application/sdp.")
    body = await read_small_body(request, MAX_SDP_BYTES)
    try:
        sdp = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, "invalid_sdp", "The SDP offer is not UTF-8 text.") from None
    if (why := check_sdp(sdp)) is not None:
        raise ApiError(400, "invalid_sdp", why[0].upper() + why[1:] + ".")
    return sdp


async def _relay(rt: Runtime, request: dict[str, Any]) -> dict[str, Any]:
    """One request to the ingest's WebRTC host; 503 when no ingest runs on this host."""
    path = control_socket(rt.settings)
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_unix_connection(str(path), limit=MAX_REQUEST_BYTES), 5
        )
    except (OSError, TimeoutError):
        raise ApiError(
            503,
            "live_ingest_unavailable",
            "The live ingest is not running on this host; WebRTC needs it.",
            headers={"Retry-After": "5"},
        ) from None
    try:
        writer.write(json.dumps(request).encode() + b"\n")
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), RELAY_TIMEOUT)
        reply: dict[str, Any] = json.loads(line)
    except (OSError, TimeoutError, ValueError):
        raise ApiError(
            503, "live_ingest_unavailable", "The live ingest did not answer in time."
        ) from None
    finally:
        writer.close()
    return reply


_ERRORS = {
    400: "invalid_sdp",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    409: "already_publishing",
    503: "unavailable",
}


def _answer(reply: dict[str, Any], location: str) -> Response:
    status = int(reply.get("status", 500))
    if status != 201:
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        code = _ERRORS.get(status, "internal_error")
        raise ApiError(status, code, str(reply.get("message") or "refused"), headers=headers)
    return Response(
        reply["sdp"],
        status_code=201,
        media_type=_SDP,
        headers={"Location": f"{location}/{reply['resource']}"},
    )


def _bearer(request: Request) -> str:
    auth = request.headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


@webrtc_router.post("/whip/{stream_key}", status_code=201, response_class=Response)
async def whip_publish(
    stream_key: str, request: Request, rt: Runtime = Depends(runtime_dep)
) -> Response:
    """Publish to a live stream over WebRTC (WHIP): the stream key in the path and as the
    bearer token. ``401`` for a missing or wrong key (before any media), ``409`` when the
    stream has a publisher, ``400`` for an offer that is not SDP or sends no media."""
    token = _bearer(request)
    if not token or not hmac.compare_digest(token.encode(), stream_key.encode()):
        raise ApiError(
            401,
            "unauthorized",
            "Send the stream key as the bearer token (Authorization: Bearer STREAM-KEY).",
            headers={"WWW-Authenticate": "Bearer"},
        )
    sdp = await _offer(request)
    reply = await _relay(rt, {"op": "whip", "stream_key": stream_key, "sdp": sdp})
    return _answer(reply, "/whip/session")


@webrtc_router.delete("/whip/session/{resource}", status_code=200, response_class=Response)
async def whip_end(resource: str, rt: Runtime = Depends(runtime_dep)) -> Response:
    """End a WHIP session (its ``Location``); ``404`` for one that is not there."""
    return await _delete(rt, "whip", resource)


@webrtc_router.post("/whep/{playback_id}", status_code=201, response_class=Response)
async def whep_play(
    playback_id: str, request: Request, rt: Runtime = Depends(runtime_dep)
) -> Response:
    """Play a live stream over WebRTC (WHEP): its H.264 as published, from the next
    keyframe. ``404`` for an unknown playback id or an idle stream; ``403``
    ``protected_stream`` for a protected one (its media goes out only encrypted, over HLS
    and DASH, with a licence)."""
    live = await asyncio.to_thread(resolve_live_playback, rt, playback_id)
    if live is not None and live.protection != "none":
        raise ApiError(
            403,
            "protected_stream",
            "This live stream is protected: play its HLS or DASH (WebRTC carries no DRM here).",
        )
    sdp = await _offer(request)
    reply = await _relay(rt, {"op": "whep", "playback_id": playback_id, "sdp": sdp})
    return _answer(reply, "/whep/session")


@webrtc_router.delete("/whep/session/{resource}", status_code=200, response_class=Response)
async def whep_end(resource: str, rt: Runtime = Depends(runtime_dep)) -> Response:
    """End a WHEP session (its ``Location``); ``404`` for one that is not there."""
    return await _delete(rt, "whep", resource)


async def _delete(rt: Runtime, kind: str, resource: str) -> Response:
    if len(resource) > 64:
        raise ApiError(404, "not_found", "No such WebRTC session.")
    reply = await _relay(rt, {"op": "delete", "kind": kind, "resource": resource})
    if reply.get("status") != 200:
        raise ApiError(404, "not_found", "No such WebRTC session.")
    return Response(status_code=200)
