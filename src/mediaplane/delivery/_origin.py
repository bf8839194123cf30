"""The /play routes: each parses the request, calls the playback service (:mod:`._service`)
and shapes the response. They are plain ``def`` routes (the service does blocking
database and store work, so they run in a thread); :class:`._fast.PlayOrigin` answers the
same requests without the framework when the lookup is cached."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import FileResponse, StreamingResponse

from mediaplane.http import runtime_dep
from mediaplane.runtime import Runtime

from ._service import (
    Text,
    admitted,
    carried,
    master_text,
    media_text,
    mpd_text,
    segment_bytes,
    segment_range,
    stream_ping,
    stream_stop,
)
from ._service import segment as find_segment

router = APIRouter(prefix="/play", tags=["playback"])


def send_text(request: Request, t: Text) -> Response:
    """A rendered manifest: 304 on a matching ETag, bodiless on HEAD."""
    headers = {"Cache-Control": t.cache, "ETag": t.etag}
    if request.headers.get("if-none-match") == t.etag:
        return Response(status_code=304, headers=headers)
    if request.method == "HEAD":
        headers["Content-Length"] = str(len(t.body))
        return Response(status_code=200, headers=headers, media_type=t.media_type)
    return Response(t.body, media_type=t.media_type, headers=headers)


@router.api_route("/{playback_id}/master.m3u8", methods=["GET", "HEAD"])
def hls_master(playback_id: str, request: Request, rt: Runtime = Depends(runtime_dep)) -> Response:
    return send_text(request, master_text(*admitted(rt, playback_id, request)))


@router.api_route("/{playback_id}/manifest.mpd", methods=["GET", "HEAD"])
def dash_mpd(playback_id: str, request: Request, rt: Runtime = Depends(runtime_dep)) -> Response:
    return send_text(request, mpd_text(*admitted(rt, playback_id, request)))


@router.post("/{playback_id}/stream")
def stream_heartbeat(
    playback_id: str, request: Request, rt: Runtime = Depends(runtime_dep)
) -> dict[str, dict[str, float]]:
    """A player's heartbeat (``?st=``: the carry token of its playlist URLs): keeps its
    stream counted while paused; ``ttl_seconds`` is how long it lives without another."""
    ttl = stream_ping(rt, playback_id, request)
    return {"data": {"ttl_seconds": ttl}}


@router.delete("/{playback_id}/stream", status_code=204)
def stream_release(
    playback_id: str, request: Request, rt: Runtime = Depends(runtime_dep)
) -> Response:
    """The player stopped (``?st=``): its stream stops counting now."""
    stream_stop(rt, playback_id, request)
    return Response(status_code=204, headers={"Cache-Control": "no-store"})


@router.api_route("/{playback_id}/{rendition}/media.m3u8", methods=["GET", "HEAD"])
def hls_media(
    playback_id: str, rendition: str, request: Request, rt: Runtime = Depends(runtime_dep)
) -> Response:
    p, query = carried(rt, playback_id, request, rendition)
    return send_text(request, media_text(p, rendition, query))


@router.api_route("/{playback_id}/{rendition}/{name}", methods=["GET", "HEAD"])
def segment(
    playback_id: str,
    rendition: str,
    name: str,
    request: Request,
    rt: Runtime = Depends(runtime_dep),
) -> Response:
    seg = find_segment(rt, carried(rt, playback_id, request, rendition)[0], rendition, name)
    if seg.local is not None:
        return FileResponse(
            seg.local, media_type=seg.media_type, headers={"Cache-Control": seg.cache}
        )
    span = segment_range(rt, seg, request.headers.get("range", ""))
    if span.status == 416:
        return Response(status_code=416, headers=span.headers)
    if request.method == "HEAD":
        return Response(status_code=span.status, headers=span.headers, media_type=seg.media_type)
    return StreamingResponse(
        segment_bytes(rt, seg, span),
        status_code=span.status,
        headers=span.headers,
        media_type=seg.media_type,
    )
