from __future__ import annotations

import contextlib
import hashlib
import re
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import FileResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from mediaplane.catalog import (
    AssetNotFound,
    AssetStatus,
    ModerationStatus,
    Rights,
    asset_for_playback,
)
from mediaplane.http import ApiError, runtime_dep
from mediaplane.media import (
    Presentation,
    extract_thumbnail,
    render_hls_master,
    render_hls_media,
    render_mpd,
)
from mediaplane.runtime import Runtime
from mediaplane.storage import ObjectNotFound

from ._access import check_playback

router = APIRouter(prefix="/play", tags=["playback"])

IMMUTABLE = "public, max-age=31536000, immutable"
MANIFEST_CACHE = "public, max-age=60"
#: A playlist that gains segments: caches may hold it for about one segment at most.
GROWING_CACHE = "public, max-age=1"
RESTRICTED_CACHE = "private, max-age=60"
THUMB_CACHE = "public, max-age=86400"
HLS_TYPE = "application/vnd.apple.mpegurl"
DASH_TYPE = "application/dash+xml"
RID = re.compile(r"^[a-z0-9_]{1,32}$")
LOOKUP_TTL = 5.0


@dataclass(frozen=True)
class Playable:
    asset_id: str
    updated_at: datetime
    presentation: Presentation
    moderation: ModerationStatus
    rights: Rights | None


class _LookupCache:
    """playback id → Playable for a few seconds, so segment requests skip the database."""

    def __init__(self, size: int = 2048) -> None:
        self.items: OrderedDict[str, tuple[float, Playable]] = OrderedDict()
        self.size = size

    def get(self, key: str) -> Playable | None:
        hit = self.items.get(key)
        if hit is None or hit[0] < time.monotonic():
            return None
        return hit[1]

    def put(self, key: str, value: Playable) -> None:
        self.items[key] = (time.monotonic() + LOOKUP_TTL, value)
        self.items.move_to_end(key)
        while len(self.items) > self.size:
            self.items.popitem(last=False)


_lookups = _LookupCache()
_manifests: OrderedDict[tuple[str, str, datetime], bytes] = OrderedDict()


def _playable(rt: Runtime, playback_id: str, request: Request) -> Playable:
    """The asset behind ``playback_id`` if this viewer may play it now (else 403/404)."""
    p = _lookup(rt, playback_id)
    check_playback(request, rt.settings, moderation=p.moderation, rights=p.rights)
    return p


def _lookup(rt: Runtime, playback_id: str) -> Playable:
    hit = _lookups.get(playback_id)
    if hit is not None:
        return hit
    with rt.db.session() as s:
        try:
            asset, _ = asset_for_playback(s, playback_id)
        except AssetNotFound:
            raise ApiError(404, "not_found", "No such playback id.") from None
        if asset.status is AssetStatus.ERRORED:
            raise ApiError(404, "asset_errored", "This asset failed to process.")
        if asset.status is not AssetStatus.READY or not asset.presentation:
            raise ApiError(
                404,
                "asset_not_ready",
                "This asset is still being prepared.",
                headers={"Retry-After": "2"},
            )
        found = Playable(
            asset.id,
            asset.updated_at,
            Presentation.from_dict(asset.presentation),
            asset.moderation,
            Rights.from_json(asset.rights) if asset.rights else None,
        )
    if found.presentation.complete:  # a growing presentation changes with every segment
        _lookups.put(playback_id, found)
    return found


def _manifest(p: Playable, name: str, render: Any) -> bytes:
    key = (p.asset_id, name, p.updated_at)
    body = _manifests.get(key)
    if body is None:
        body = render().encode()
        _manifests[key] = body
        while len(_manifests) > 4096:
            _manifests.popitem(last=False)
    return body


def _cache(p: Playable, public: str) -> str:
    """Media under rights (territories, a window) must not be shared by caches between
    viewers or outlive the window: private and short for those, ``public`` for the rest."""
    return RESTRICTED_CACHE if p.rights is not None else public


def _text(request: Request, body: bytes, media_type: str, cache: str) -> Response:
    etag = '"' + hashlib.sha1(body, usedforsecurity=False).hexdigest() + '"'
    headers = {"Cache-Control": cache, "ETag": etag}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    if request.method == "HEAD":
        headers["Content-Length"] = str(len(body))
        return Response(status_code=200, headers=headers, media_type=media_type)
    return Response(body, media_type=media_type, headers=headers)


@router.api_route("/{playback_id}/master.m3u8", methods=["GET", "HEAD"])
def hls_master(playback_id: str, request: Request, rt: Runtime = Depends(runtime_dep)) -> Response:
    p = _playable(rt, playback_id, request)
    body = _manifest(p, "master", lambda: render_hls_master(p.presentation))
    growing = not p.presentation.complete
    return _text(request, body, HLS_TYPE, _cache(p, GROWING_CACHE if growing else MANIFEST_CACHE))


@router.api_route("/{playback_id}/manifest.mpd", methods=["GET", "HEAD"])
def dash_mpd(playback_id: str, request: Request, rt: Runtime = Depends(runtime_dep)) -> Response:
    p = _playable(rt, playback_id, request)
    if not p.presentation.settled:
        raise ApiError(
            404,
            "asset_not_ready",
            "DASH is served once the first renditions are packaged; HLS plays already.",
            headers={"Retry-After": "5"},
        )
    body = _manifest(p, "mpd", lambda: render_mpd(p.presentation))
    # Rungs still encoding join later: a snapshot MPD must not be cached for long.
    cache = MANIFEST_CACHE if p.presentation.complete else GROWING_CACHE
    return _text(request, body, DASH_TYPE, _cache(p, cache))


@router.api_route("/{playback_id}/{rendition}/media.m3u8", methods=["GET", "HEAD"])
def hls_media(
    playback_id: str, rendition: str, request: Request, rt: Runtime = Depends(runtime_dep)
) -> Response:
    p = _playable(rt, playback_id, request)
    r = p.presentation.rendition(rendition) if RID.match(rendition) else None
    if r is None:
        raise ApiError(404, "not_found", "No such rendition.")
    return _text(
        request,
        _manifest(p, f"media:{r.id}", lambda: render_hls_media(r, p.presentation.segment_seconds)),
        HLS_TYPE,
        _cache(p, MANIFEST_CACHE if r.complete else GROWING_CACHE),
    )


_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def _remote(rt: Runtime, request: Request, key: str, media_type: str, cache: str) -> Response:
    try:
        info = rt.store.stat(key)
    except ObjectNotFound:
        raise ApiError(404, "not_found", "Segment not found.") from None
    headers = {"Cache-Control": cache, "ETag": f'"{info.etag}"', "Accept-Ranges": "bytes"}
    start, end, status = 0, info.size, 200
    m = _RANGE.match(request.headers.get("range", "").strip())
    if m and (m.group(1) or m.group(2)):
        if m.group(1):
            start = int(m.group(1))
            end = min(info.size, int(m.group(2)) + 1) if m.group(2) else info.size
        else:
            start, end = max(0, info.size - int(m.group(2))), info.size
        if start >= end or start >= info.size:
            return Response(status_code=416, headers={"Content-Range": f"bytes */{info.size}"})
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{info.size}"
    headers["Content-Length"] = str(end - start)
    if request.method == "HEAD":
        return Response(status_code=status, headers=headers, media_type=media_type)
    return StreamingResponse(
        rt.store.iter_range(key, start, end),
        status_code=status,
        headers=headers,
        media_type=media_type,
    )


@router.api_route("/{playback_id}/{rendition}/{name}", methods=["GET", "HEAD"])
def segment(
    playback_id: str,
    rendition: str,
    name: str,
    request: Request,
    rt: Runtime = Depends(runtime_dep),
) -> Response:
    p = _playable(rt, playback_id, request)
    r = p.presentation.rendition(rendition) if RID.match(rendition) else None
    if r is None:
        raise ApiError(404, "not_found", "No such rendition.")
    if name == "init.mp4":
        media_type = "video/mp4" if r.kind == "video" else "audio/mp4"
    else:
        m = re.fullmatch(r"(\d{1,9})\.m4s", name)
        if m is None or not any(s.number == int(m.group(1)) for s in r.segments):
            raise ApiError(404, "not_found", "No such segment.")
        media_type = "video/iso.segment"
    key = f"assets/{p.asset_id}/cmaf/{r.id}/{name}"
    try:
        local = rt.store.local_path(key)
    except ObjectNotFound:
        raise ApiError(404, "not_found", "Segment not found.") from None
    cache = _cache(p, IMMUTABLE)
    if local is None:
        return _remote(rt, request, key, media_type, cache)
    return FileResponse(local, media_type=media_type, headers={"Cache-Control": cache})


@router.get("/{playback_id}/thumbnail.jpg")
async def thumbnail(
    playback_id: str,
    request: Request,
    rt: Runtime = Depends(runtime_dep),
    time_s: float = Query(0.0, alias="time", ge=0, le=1e7),
    width: int = Query(640, ge=16, le=1920),
) -> Response:
    """A JPEG frame at ``time`` seconds, ``width`` pixels wide (made once, then stored)."""
    p = await run_in_threadpool(_playable, rt, playback_id, request)
    pres = p.presentation
    videos = pres.video
    if not videos:
        raise ApiError(404, "not_found", "This asset has no video.")
    r = next((v for v in videos if (v.width or 0) >= width), videos[-1])
    t = min(time_s, max(0.0, pres.duration - 0.05))
    cache_key = f"assets/{p.asset_id}/thumbs/{int(t * 1000)}_{width}.jpg"
    # While the ladder still grows, the frame may come from a nearer segment: keep it briefly.
    final = pres.complete
    headers = {"Cache-Control": _cache(p, THUMB_CACHE if final else GROWING_CACHE)}

    def make() -> bytes:
        if final:
            with contextlib.suppress(ObjectNotFound):
                return rt.store.get_bytes(cache_key)
        ticks = int(t * r.timescale)
        seg = next(
            (s for s in r.segments if s.start <= ticks < s.start + s.duration), r.segments[-1]
        )
        data = rt.store.get_bytes(f"assets/{p.asset_id}/cmaf/{r.id}/init.mp4") + rt.store.get_bytes(
            f"assets/{p.asset_id}/cmaf/{r.id}/{seg.number}.m4s"
        )
        jpeg = extract_thumbnail(
            rt.toolchain, rt.settings, data, (ticks - seg.start) / r.timescale, width
        )
        if final:
            rt.store.put_bytes(cache_key, jpeg)
        return jpeg

    jpeg = await run_in_threadpool(make)
    return Response(jpeg, media_type="image/jpeg", headers=headers)
