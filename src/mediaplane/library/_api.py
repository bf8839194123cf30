"""REST API of the viewer's library: /api/v1/me/history, /api/v1/me/favourites,
/api/v1/me/library/{asset_id} and /api/v1/playlists. Every route needs a signed-in user
(a session with its CSRF header, a JWT, or a user's API key); any scope will do, since the
library is the user's own (a viewer's session is read-scoped). Routes parse, call one view
function in a thread and shape the answer."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from mediaplane.accounts import Principal, Scope, authenticated
from mediaplane.http import ApiError, read_small_body, runtime_dep
from mediaplane.runtime import Runtime

from . import _views as views
from ._errors import LibraryError
from ._service import MAX_DESCRIPTION, MAX_NAME, MAX_PLAYLIST_ITEMS, MAX_SECONDS

router = APIRouter(prefix="/api/v1", tags=["library"])
_user = authenticated(Scope.READ)
_JSON_LIMIT = 8 * 1024
_M = TypeVar("_M", bound=BaseModel)
_T = TypeVar("_T")


class ProgressJson(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True)
    position_seconds: float = Field(ge=0, le=MAX_SECONDS)
    duration: float | None = Field(default=None, ge=0, le=MAX_SECONDS)


class PlaylistJson(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=MAX_NAME)
    description: str = Field(default="", max_length=MAX_DESCRIPTION)


class PlaylistPatchJson(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, min_length=1, max_length=MAX_NAME)
    description: str | None = Field(default=None, max_length=MAX_DESCRIPTION)


class ItemJson(BaseModel):
    model_config = ConfigDict(extra="forbid")
    asset_id: str = Field(min_length=1, max_length=64)
    position: int | None = Field(default=None, ge=0, le=MAX_PLAYLIST_ITEMS)


async def _json(request: Request, model: type[_M]) -> _M:
    """The request's JSON body as ``model``, read through the bounded reader."""
    if not request.headers.get("content-type", "").startswith("application/json"):
        raise ApiError(415, "unsupported_media_type", "Send a JSON body (application/json).")
    try:
        return model.model_validate_json(await read_small_body(request, _JSON_LIMIT))
    except ValidationError as exc:
        errors = exc.errors()
        where = ".".join(str(p) for p in errors[0]["loc"]) if errors else ""
        message = errors[0]["msg"] if errors else "not valid"
        raise ApiError(400, "invalid_request", f"{where or 'body'}: {message}") from None


async def _call(fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
    """Run a blocking view in a thread; a library error the caller made is a 4xx."""
    try:
        return await run_in_threadpool(functools.partial(fn, *args, **kwargs))
    except LibraryError as exc:
        raise ApiError(exc.status, exc.code, exc.message) from None


def _page(limit: int, page: int, total: int) -> dict[str, int]:
    return {"page": page, "limit": limit, "total": total}


# --- history --------------------------------------------------------------------------------


@router.put("/me/history/{asset_id}")
async def record_progress(
    asset_id: str,
    request: Request,
    rt: Runtime = Depends(runtime_dep),
    principal: Principal = Depends(_user),
) -> dict[str, Any]:
    """Record where the caller is in an asset: ``{"position_seconds", "duration"?}``
    (seconds; at 95 % of the length it counts as finished and resumes from the start)."""
    body = await _json(request, ProgressJson)
    data = await _call(
        views.record_progress_view, rt, principal, asset_id, body.position_seconds, body.duration
    )
    return {"data": data}


@router.get("/me/history")
async def list_history(
    rt: Runtime = Depends(runtime_dep),
    principal: Principal = Depends(_user),
    limit: int = Query(25, ge=1, le=100),
    page: int = Query(1, ge=1, le=10_000),
    continue_watching: bool = Query(False, description="Only started, unfinished assets"),
) -> dict[str, Any]:
    """The caller's history, most recent first, each with its resume position."""
    data, total = await _call(
        views.history_view,
        rt,
        principal,
        limit=limit,
        page=page,
        continue_watching=continue_watching,
    )
    return {"data": data, "pagination": _page(limit, page, total)}


@router.delete("/me/history/{asset_id}", status_code=204)
async def forget_one(
    asset_id: str, rt: Runtime = Depends(runtime_dep), principal: Principal = Depends(_user)
) -> Response:
    """Remove one asset from the caller's history."""
    await _call(views.forget_view, rt, principal, asset_id)
    return Response(status_code=204)


@router.delete("/me/history", status_code=204)
async def forget_everything(
    rt: Runtime = Depends(runtime_dep), principal: Principal = Depends(_user)
) -> Response:
    """Clear the caller's history."""
    await _call(views.forget_view, rt, principal, None)
    return Response(status_code=204)


@router.get("/me/library/{asset_id}")
async def asset_state(
    asset_id: str, rt: Runtime = Depends(runtime_dep), principal: Principal = Depends(_user)
) -> dict[str, Any]:
    """The caller's progress in an asset, whether it is a favourite, and the playlists
    holding it (what the watch page shows)."""
    return {"data": await _call(views.asset_state_view, rt, principal, asset_id)}


# --- favourites -----------------------------------------------------------------------------


@router.put("/me/favourites/{asset_id}")
async def add_favourite(
    asset_id: str,
    response: Response,
    rt: Runtime = Depends(runtime_dep),
    principal: Principal = Depends(_user),
) -> dict[str, Any]:
    """Mark an asset as a favourite (201 when new, 200 when it already was)."""
    created = await _call(views.add_favourite_view, rt, principal, asset_id)
    response.status_code = 201 if created else 200
    return {"data": {"asset_id": asset_id, "favourite": True}}


@router.delete("/me/favourites/{asset_id}", status_code=204)
async def remove_favourite(
    asset_id: str, rt: Runtime = Depends(runtime_dep), principal: Principal = Depends(_user)
) -> Response:
    await _call(views.remove_favourite_view, rt, principal, asset_id)
    return Response(status_code=204)


@router.get("/me/favourites")
async def list_favourites(
    rt: Runtime = Depends(runtime_dep),
    principal: Principal = Depends(_user),
    limit: int = Query(25, ge=1, le=100),
    page: int = Query(1, ge=1, le=10_000),
) -> dict[str, Any]:
    """The caller's favourites, newest first."""
    data, total = await _call(views.favourites_view, rt, principal, limit=limit, page=page)
    return {"data": data, "pagination": _page(limit, page, total)}


# --- playlists ------------------------------------------------------------------------------


@router.post("/playlists", status_code=201)
async def create_playlist(
    request: Request, rt: Runtime = Depends(runtime_dep), principal: Principal = Depends(_user)
) -> dict[str, Any]:
    """Create a playlist: ``{"name", "description"?}``; only its owner ever sees it."""
    body = await _json(request, PlaylistJson)
    data = await _call(views.create_playlist_view, rt, principal, body.name, body.description)
    return {"data": data}


@router.get("/playlists")
async def list_playlists(
    rt: Runtime = Depends(runtime_dep), principal: Principal = Depends(_user)
) -> dict[str, Any]:
    """The caller's playlists, most recently changed first."""
    return {"data": await _call(views.playlists_view, rt, principal)}


@router.get("/playlists/{playlist_id}")
async def get_playlist(
    playlist_id: str, rt: Runtime = Depends(runtime_dep), principal: Principal = Depends(_user)
) -> dict[str, Any]:
    """One of the caller's playlists with its items in order (another user's: 404)."""
    return {"data": await _call(views.playlist_view, rt, principal, playlist_id)}


@router.patch("/playlists/{playlist_id}")
async def update_playlist(
    playlist_id: str,
    request: Request,
    rt: Runtime = Depends(runtime_dep),
    principal: Principal = Depends(_user),
) -> dict[str, Any]:
    """Rename a playlist or change its description."""
    body = await _json(request, PlaylistPatchJson)
    data = await _call(
        views.update_playlist_view, rt, principal, playlist_id, body.name, body.description
    )
    return {"data": data}


@router.delete("/playlists/{playlist_id}", status_code=204)
async def delete_playlist(
    playlist_id: str, rt: Runtime = Depends(runtime_dep), principal: Principal = Depends(_user)
) -> Response:
    await _call(views.delete_playlist_view, rt, principal, playlist_id)
    return Response(status_code=204)


@router.post("/playlists/{playlist_id}/items")
async def add_item(
    playlist_id: str,
    request: Request,
    response: Response,
    rt: Runtime = Depends(runtime_dep),
    principal: Principal = Depends(_user),
) -> dict[str, Any]:
    """Add ``{"asset_id", "position"?}`` (0 first; the end by default), or move an asset
    already in the playlist to ``position``: 201 when added, 200 when moved. Answers the
    playlist."""
    body = await _json(request, ItemJson)
    data, created = await _call(
        views.add_item_view, rt, principal, playlist_id, body.asset_id, body.position
    )
    response.status_code = 201 if created else 200
    return {"data": data}


@router.delete("/playlists/{playlist_id}/items/{asset_id}", status_code=204)
async def remove_item(
    playlist_id: str,
    asset_id: str,
    rt: Runtime = Depends(runtime_dep),
    principal: Principal = Depends(_user),
) -> Response:
    await _call(views.remove_item_view, rt, principal, playlist_id, asset_id)
    return Response(status_code=204)
