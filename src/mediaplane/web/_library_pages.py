"""The signed-in viewer's library page: "Continue watching", favourites and playlists,
with forms (CSRF-checked, like the account pages) to clear the history, unmark a
favourite, and create, empty or delete playlists. Each calls one library function."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from mediaplane import library
from mediaplane.accounts import Principal, Scope, session_user
from mediaplane.errors import NotFound
from mediaplane.http import runtime_dep
from mediaplane.runtime import Runtime

from ._account_pages import BadForm, _checked_form, _notice, _redirect, page

if TYPE_CHECKING:
    from collections.abc import Callable

router = APIRouter(include_in_schema=False)
_ROW = 12


def _principal(request: Request) -> Principal | None:
    """The session's user as a principal (what they may see is the catalog's rule)."""
    user = session_user(request)
    return Principal(user.id, user.role, Scope.READ, "session") if user is not None else None


def _clock(seconds: float) -> str:
    s = int(seconds)
    h, m = divmod(s // 60, 60)
    return f"{h}:{m:02d}:{s % 60:02d}" if h else f"{m}:{s % 60:02d}"


def _contents(rt: Runtime, principal: Principal) -> dict[str, Any]:
    watching, _ = library.history_view(rt, principal, limit=_ROW, page=1, continue_watching=True)
    favourites, total = library.favourites_view(rt, principal, limit=50, page=1)
    playlists = [
        library.playlist_view(rt, principal, p["id"]) for p in library.playlists_view(rt, principal)
    ]
    for entry in watching:
        entry["resume_label"] = _clock(entry["resume_position_seconds"])
        length = entry["duration_seconds"] or 0
        entry["percent"] = round(100 * entry["position_seconds"] / length) if length else 0
    return {
        "watching": watching,
        "favourites": favourites,
        "favourites_total": total,
        "playlists": playlists,
    }


@router.get("/library", response_class=HTMLResponse)
def library_page(request: Request, rt: Runtime = Depends(runtime_dep)) -> Response:
    principal = _principal(request)
    if principal is None:
        return _redirect("/signin?next=" + quote("/library"))
    return page(request, "library.html", _contents(rt, principal))


async def _act(request: Request, rt: Runtime, fn: Callable[..., object], *args: str) -> Response:
    """A library form: CSRF checked, signed in, ``fn(session, principal, *args)`` done
    (``args`` may name form fields as ``form:NAME``), back to the page."""
    try:
        form = await _checked_form(request)
    except BadForm as exc:
        return _notice(request, "Not changed", exc.message, exc.status)
    principal = await run_in_threadpool(_principal, request)
    if principal is None:
        return _redirect("/signin?next=" + quote("/library"))
    values = [form.get(a[5:], "") if a.startswith("form:") else a for a in args]

    def work() -> None:
        with rt.db.session() as s:
            fn(s, principal, *values)

    try:
        await run_in_threadpool(work)
    except library.LibraryError as exc:
        return _notice(request, "Not changed", exc.message, exc.status)
    except NotFound as exc:
        return _notice(request, "Not found", exc.message, 404)
    return _redirect("/library")


@router.post("/library/history/clear", response_class=HTMLResponse)
async def clear_history(request: Request, rt: Runtime = Depends(runtime_dep)) -> Response:
    return await _act(request, rt, library.forget_all)


@router.post("/library/favourites/{asset_id}/remove", response_class=HTMLResponse)
async def remove_favourite(
    asset_id: str, request: Request, rt: Runtime = Depends(runtime_dep)
) -> Response:
    return await _act(request, rt, library.remove_favourite, asset_id)


@router.post("/library/playlists", response_class=HTMLResponse)
async def create_playlist(request: Request, rt: Runtime = Depends(runtime_dep)) -> Response:
    return await _act(request, rt, library.create_playlist, "form:name")


@router.post("/library/playlists/{playlist_id}/delete", response_class=HTMLResponse)
async def delete_playlist(
    playlist_id: str, request: Request, rt: Runtime = Depends(runtime_dep)
) -> Response:
    return await _act(request, rt, library.delete_playlist, playlist_id)


@router.post(
    "/library/playlists/{playlist_id}/items/{asset_id}/remove", response_class=HTMLResponse
)
async def remove_item(
    playlist_id: str, asset_id: str, request: Request, rt: Runtime = Depends(runtime_dep)
) -> Response:
    return await _act(request, rt, library.remove_item, playlist_id, asset_id)
