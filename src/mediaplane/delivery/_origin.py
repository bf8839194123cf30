from __future__ import annotations

import hashlib
import re
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import FileResponse, StreamingResponse

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
    Rendition,
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
    #: rendition id → its segment numbers, so a segment request is a set lookup.
    numbers: dict[str, frozenset[int]] = field(default_factory=dict, compare=False)

    def has_segment(self, rendition: Rendition, number: int) -> bool:
        known = self.numbers.get(rendition.id)
        if known is None:
            known = self.numbers[rendition.id] = frozenset(s.number for s in rendition.segments)
        return number in known


@dataclass(frozen=True)
class Text:
    """A rendered manifest with its ETag and the headers it is served with."""

    body: bytes
    etag: str
    media_type: str
    cache: str


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
#: (asset, manifest name, asset version) → rendered body and its ETag (hashed once).
_manifests: OrderedDict[tuple[str, str, datetime], tuple[bytes, str]] = OrderedDict()


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


def _manifest(p: Playable, name: str, render: Any, media_type: str, cache: str) -> Text:
    key = (p.asset_id, name, p.updated_at)
    hit = _manifests.get(key)
    if hit is None:
        body = render().encode()
        hit = body, '"' + hashlib.sha1(body, usedforsecurity=False).hexdigest() + '"'
        _manifests[key] = hit
        while len(_manifests) > 4096:
            _manifests.popitem(last=False)
    return Text(hit[0], hit[1], media_type, _cache(p, cache))


def _cache(p: Playable, public: str) -> str:
    """Media under rights (territories, a window) must not be shared by caches between
    viewers or outlive the window: private and short for those, ``public`` for the rest."""
    return RESTRICTED_CACHE if p.rights is not None else public


def _text(request: Request, t: Text) -> Response:
    headers = {"Cache-Control": t.cache, "ETag": t.etag}
    if request.headers.get("if-none-match") == t.etag:
        return Response(status_code=304, headers=headers)
    if request.method == "HEAD":
        headers["Content-Length"] = str(len(t.body))
        return Response(status_code=200, headers=headers, media_type=t.media_type)
    return Response(t.body, media_type=t.media_type, headers=headers)


def master_text(p: Playable) -> Text:
    """The HLS master playlist of ``p``."""
    growing = not p.presentation.complete
    cache = GROWING_CACHE if growing else MANIFEST_CACHE
    return _manifest(p, "master", lambda: render_hls_master(p.presentation), HLS_TYPE, cache)


def mpd_text(p: Playable) -> Text:
    """The DASH MPD of ``p`` (404 while only the muxed preview exists)."""
    if not p.presentation.settled:
        raise ApiError(
            404,
            "asset_not_ready",
            "DASH is served once the first renditions are packaged; HLS plays already.",
            headers={"Retry-After": "5"},
        )
    # Rungs still encoding join later: a snapshot MPD must not be cached for long.
    cache = MANIFEST_CACHE if p.presentation.complete else GROWING_CACHE
    return _manifest(p, "mpd", lambda: render_mpd(p.presentation), DASH_TYPE, cache)


def _rendition(p: Playable, rendition: str) -> Rendition:
    r = p.presentation.rendition(rendition) if RID.match(rendition) else None
    if r is None:
        raise ApiError(404, "not_found", "No such rendition.")
    return r


def media_text(p: Playable, rendition: str) -> Text:
    """The HLS media playlist of one rendition of ``p``."""
    r = _rendition(p, rendition)
    return _manifest(
        p,
        f"media:{r.id}",
        lambda: render_hls_media(r, p.presentation.segment_seconds),
        HLS_TYPE,
        MANIFEST_CACHE if r.complete else GROWING_CACHE,
    )


def segment_object(p: Playable, rendition: str, name: str) -> tuple[str, str, str]:
    """(object key, media type, Cache-Control) of an init or media segment of ``p``."""
    r = _rendition(p, rendition)
    if name == "init.mp4":
        media_type = "video/mp4" if r.kind == "video" else "audio/mp4"
    else:
        m = _SEGMENT.fullmatch(name)
        if m is None or not p.has_segment(r, int(m.group(1))):
            raise ApiError(404, "not_found", "No such segment.")
        media_type = "video/iso.segment"
    return f"assets/{p.asset_id}/cmaf/{r.id}/{name}", media_type, _cache(p, IMMUTABLE)


# The routes below are the reference path (and the OpenAPI description); PlayOrigin
# (:mod:`._fast`) answers the same requests without the framework when the lookup is cached.


@router.api_route("/{playback_id}/master.m3u8", methods=["GET", "HEAD"])
def hls_master(playback_id: str, request: Request, rt: Runtime = Depends(runtime_dep)) -> Response:
    return _text(request, master_text(_playable(rt, playback_id, request)))


@router.api_route("/{playback_id}/manifest.mpd", methods=["GET", "HEAD"])
def dash_mpd(playback_id: str, request: Request, rt: Runtime = Depends(runtime_dep)) -> Response:
    return _text(request, mpd_text(_playable(rt, playback_id, request)))


@router.api_route("/{playback_id}/{rendition}/media.m3u8", methods=["GET", "HEAD"])
def hls_media(
    playback_id: str, rendition: str, request: Request, rt: Runtime = Depends(runtime_dep)
) -> Response:
    return _text(request, media_text(_playable(rt, playback_id, request), rendition))


_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_SEGMENT = re.compile(r"(\d{1,9})\.m4s")


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
    key, media_type, cache = segment_object(p, rendition, name)
    try:
        local = rt.store.local_path(key)
    except ObjectNotFound:
        raise ApiError(404, "not_found", "Segment not found.") from None
    if local is None:
        return _remote(rt, request, key, media_type, cache)
    return FileResponse(local, media_type=media_type, headers={"Cache-Control": cache})
