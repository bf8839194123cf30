"""REST API for live streams: /api/v1/live-streams. Each route parses the request and calls
one service function (blocking: FastAPI runs sync routes in a thread); an unknown stream is
a :class:`~._errors.LiveStreamNotFound`, answered 404 by :mod:`mediaplane.http`."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from mediaplane.accounts import Principal, Scope, authenticated
from mediaplane.catalog import PlaybackPolicy
from mediaplane.http import ApiError, runtime_dep
from mediaplane.runtime import Runtime

from ._errors import InvalidProtection
from ._models import LatencyMode
from ._service import (
    DEFAULT_DVR_WINDOW_SECONDS,
    DEFAULT_RECONNECT_WINDOW_SECONDS,
    MAX_DVR_WINDOW_SECONDS,
    MAX_RECONNECT_WINDOW_SECONDS,
    add_live_playback_id,
    create_live_stream,
    delete_live_stream,
    disable_live_stream,
    enable_live_stream,
    live_stream_view,
    live_stream_views,
    remove_live_playback_id,
    reset_stream_key,
    update_live_stream,
)

router = APIRouter(prefix="/api/v1", tags=["live streams"])
_read = authenticated(Scope.READ)
_write = authenticated(Scope.WRITE)


class CreateLiveStreamJson(BaseModel):
    model_config = ConfigDict(extra="forbid")
    latency_mode: LatencyMode = LatencyMode.STANDARD
    record: bool = False
    dvr_window_seconds: int = Field(
        default=DEFAULT_DVR_WINDOW_SECONDS, ge=0, le=MAX_DVR_WINDOW_SECONDS
    )
    reconnect_window_seconds: int = Field(
        default=DEFAULT_RECONNECT_WINDOW_SECONDS, ge=0, le=MAX_RECONNECT_WINDOW_SECONDS
    )
    playback_policy: PlaybackPolicy = PlaybackPolicy.PUBLIC
    channel_id: str | None = Field(default=None, max_length=32)
    #: ``none``, ``cenc`` or ``cbcs`` (``aes-128`` is VOD's only: 400).
    protection: str = Field(default="none", max_length=16)


class UpdateLiveStreamJson(BaseModel):
    model_config = ConfigDict(extra="forbid")
    protection: str | None = Field(default=None, max_length=16)


@contextlib.contextmanager
def _protection_checked() -> Iterator[None]:
    """A policy the stream cannot have is a 400 ``invalid_protection`` with the reason."""
    try:
        yield
    except InvalidProtection as exc:
        raise ApiError(400, "invalid_protection", str(exc)) from None


class LivePlaybackIdJson(BaseModel):
    model_config = ConfigDict(extra="forbid")
    policy: PlaybackPolicy = PlaybackPolicy.PUBLIC


@router.post("/live-streams", status_code=201)
def create_(
    body: CreateLiveStreamJson,
    rt: Runtime = Depends(runtime_dep),
    principal: Principal = Depends(_write),
) -> dict[str, Any]:
    """Create an idle live stream in ``channel_id`` (default: the caller's first channel
    they edit; none for admins). The answer carries its ``stream_key``: publish to
    ``rtmp://HOST:1935/live/{stream_key}``; play ``playback_ids`` like an asset's."""
    with _protection_checked():
        data = create_live_stream(
            rt,
            principal,
            channel_id=body.channel_id,
            latency_mode=body.latency_mode,
            record=body.record,
            dvr_window_seconds=body.dvr_window_seconds,
            reconnect_window_seconds=body.reconnect_window_seconds,
            playback_policy=body.playback_policy,
            protection=body.protection.strip().lower(),
        )
    return {"data": data}


@router.get("/live-streams")
def list_(
    rt: Runtime = Depends(runtime_dep),
    principal: Principal = Depends(_read),
    limit: int = Query(25, ge=1, le=100),
    page: int = Query(1, ge=1),
) -> dict[str, Any]:
    """List the live streams the caller may see, newest first."""
    data, total = live_stream_views(rt, principal, limit=limit, page=page)
    return {"data": data, "pagination": {"page": page, "limit": limit, "total": total}}


@router.get("/live-streams/{live_stream_id}")
def get_(
    live_stream_id: str, rt: Runtime = Depends(runtime_dep), principal: Principal = Depends(_read)
) -> dict[str, Any]:
    """One live stream; ``stream_key`` is null unless the caller may change the stream."""
    return {"data": live_stream_view(rt, principal, live_stream_id)}


@router.patch("/live-streams/{live_stream_id}")
def update_(
    live_stream_id: str,
    body: UpdateLiveStreamJson,
    rt: Runtime = Depends(runtime_dep),
    principal: Principal = Depends(_write),
) -> dict[str, Any]:
    """Change ``protection`` (``none``, ``cenc``, ``cbcs``): it applies from the stream's
    next publish (a session live now goes on as it was until its publisher reconnects)."""
    protection = body.protection and body.protection.strip().lower()
    with _protection_checked():
        data = update_live_stream(rt, principal, live_stream_id, protection=protection)
    return {"data": data}


@router.delete("/live-streams/{live_stream_id}", status_code=204)
def delete_(
    live_stream_id: str, rt: Runtime = Depends(runtime_dep), principal: Principal = Depends(_write)
) -> Response:
    """Delete the stream (a publisher on it is dropped; its recordings stay as assets)."""
    delete_live_stream(rt, principal, live_stream_id)
    return Response(status_code=204)


@router.post("/live-streams/{live_stream_id}/reset-stream-key")
def reset_key_(
    live_stream_id: str, rt: Runtime = Depends(runtime_dep), principal: Principal = Depends(_write)
) -> dict[str, Any]:
    """A new stream key; the old one stops working at once."""
    return {"data": reset_stream_key(rt, principal, live_stream_id)}


@router.post("/live-streams/{live_stream_id}/disable")
def disable_(
    live_stream_id: str, rt: Runtime = Depends(runtime_dep), principal: Principal = Depends(_write)
) -> dict[str, Any]:
    """Refuse publishers (one live now is dropped) until enabled again."""
    return {"data": disable_live_stream(rt, principal, live_stream_id)}


@router.post("/live-streams/{live_stream_id}/enable")
def enable_(
    live_stream_id: str, rt: Runtime = Depends(runtime_dep), principal: Principal = Depends(_write)
) -> dict[str, Any]:
    """Accept publishers again."""
    return {"data": enable_live_stream(rt, principal, live_stream_id)}


@router.post("/live-streams/{live_stream_id}/playback-ids", status_code=201)
def add_playback_id_(
    live_stream_id: str,
    body: LivePlaybackIdJson,
    rt: Runtime = Depends(runtime_dep),
    principal: Principal = Depends(_write),
) -> dict[str, Any]:
    """Add a playback id: ``public`` plays for anyone, ``signed`` only with a playback
    token."""
    return {"data": add_live_playback_id(rt, principal, live_stream_id, body.policy)}


@router.delete("/live-streams/{live_stream_id}/playback-ids/{playback_id}", status_code=204)
def remove_playback_id_(
    live_stream_id: str,
    playback_id: str,
    rt: Runtime = Depends(runtime_dep),
    principal: Principal = Depends(_write),
) -> Response:
    """Remove a playback id."""
    remove_live_playback_id(rt, principal, live_stream_id, playback_id)
    return Response(status_code=204)
