"""Server-rendered pages: the asset list, the upload page and the watch page. Each page
calls one service function (its routes are plain ``def``: they run in a thread)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.templating import Jinja2Templates

from mediaplane.accounts import (
    ANONYMOUS,
    SESSION_COOKIE,
    Principal,
    Scope,
    User,
    Viewer,
    account_facts,
    csrf_for,
    entitle,
    session_user,
)
from mediaplane.catalog import (
    AssetNotFound,
    PlaybackTerms,
    PlaybackView,
    asset_views,
    playback_view,
)
from mediaplane.delivery import check_playback
from mediaplane.errors import NotFound
from mediaplane.http import ApiError, runtime_dep
from mediaplane.runtime import Runtime

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=str(Path(__file__).with_name("templates")))
STATIC = Path(__file__).with_name("static")

#: Vendored player files: URL name → path inside node_modules (pinned in package-lock.json).
VENDOR = {
    "shaka-player.compiled.js": "shaka-player/dist/shaka-player.compiled.js",
    "hls.min.js": "hls.js/dist/hls.min.js",
    "htmx.min.js": "htmx.org/dist/htmx.min.js",
    "tus.min.js": "tus-js-client/dist/tus.min.js",
}


def _viewer(user: User | None) -> Principal:
    """The principal a page lists for: the session's user (their channels' assets besides
    the public ones; admins everything), else anonymous (public assets only)."""
    if user is None:
        return ANONYMOUS
    return Principal(user.id, user.role, Scope.READ, "session")


def _assets(rt: Runtime, page: int, user: User | None = None) -> dict[str, Any]:
    # A listing: public assets for everyone; unlisted and private ones only to those who
    # may see them (their channel's members, admins).
    items, total = asset_views(
        rt, principal=_viewer(user), limit=50, page=page, base_url="", listing=True
    )
    return {
        "assets": items,
        "total": total,
        "page": page,
        # Poll while anything is still processing (also ready-but-growing assets).
        "preparing": any(a["status"] != "errored" and a["progress"] < 100 for a in items),
    }


@router.get("/", response_class=HTMLResponse)
def index(request: Request, page: int = Query(1, ge=1), rt: Runtime = Depends(runtime_dep)) -> Any:
    return templates.TemplateResponse(
        request, "index.html", _assets(rt, page, session_user(request))
    )


@router.get("/_partials/assets", response_class=HTMLResponse)
def assets_partial(
    request: Request, page: int = Query(1, ge=1), rt: Runtime = Depends(runtime_dep)
) -> Any:
    ctx = _assets(rt, page, session_user(request))
    return templates.TemplateResponse(request, "_assets.html", ctx)


@router.get("/upload", response_class=HTMLResponse)
def upload(request: Request, rt: Runtime = Depends(runtime_dep)) -> Any:
    """Resumable uploads from the browser (tus-js-client against /api/v1/uploads): signed
    in, with the session (its CSRF token in a header); else with a pasted API token."""
    user = session_user(request)
    csrf = csrf_for(request.cookies[SESSION_COOKIE]) if user is not None else None
    return templates.TemplateResponse(
        request,
        "upload.html",
        {"max_bytes": rt.settings.max_upload_bytes, "user": user, "csrf": csrf},
        headers={"Cache-Control": "no-store"} if csrf else None,
    )


@router.get("/watch/{playback_id}", response_class=HTMLResponse)
def watch(request: Request, playback_id: str, rt: Runtime = Depends(runtime_dep)) -> Any:
    try:
        view = playback_view(rt, playback_id)
    except AssetNotFound:
        raise AssetNotFound("No such video.") from None  # a viewer's words, not an API's
    data = view.asset
    try:  # the same decision the origin makes: say it on the page instead of a player error
        check_playback(request, rt.settings, moderation=view.moderation, rights=view.rights)
        if view.rule.gated:
            _check_rule(rt, request, view)
    except ApiError as refusal:
        return templates.TemplateResponse(
            request,
            "watch.html",
            {"asset": data, "playback_id": playback_id, "refusal": refusal.message},
            status_code=refusal.status,
        )
    return templates.TemplateResponse(
        request, "watch.html", {"asset": data, "playback_id": playback_id}
    )


def _check_rule(rt: Runtime, request: Request, view: PlaybackView) -> None:
    """The access rule's part of the origin's decision for the session's user: a private
    video of another channel is no video (404); a refusal is said on the page."""
    user = session_user(request)
    with rt.db.session() as s:
        facts = account_facts(s, user.id if user else None, view.asset["id"], view.channel_id)
    terms = PlaybackTerms(view.moderation, view.rights)
    viewer = Viewer(user_id=user.id if user else None)
    decision = entitle(
        terms, viewer, signed=False, now=datetime.now(UTC), rule=view.rule, facts=facts
    )
    if decision.reason == "private":
        raise AssetNotFound("No such video.")
    if not decision.allowed:
        raise ApiError(403, decision.reason or "forbidden", decision.message)


@router.get("/static/vendor/{name}")
def vendor(name: str, rt: Runtime = Depends(runtime_dep)) -> FileResponse:
    rel = VENDOR.get(name)
    path = rt.settings.effective_node_modules / rel if rel else None
    if path is None or not path.is_file():
        raise NotFound(f"{name} is not installed: run `npm ci`.")
    return FileResponse(
        path, media_type="text/javascript", headers={"Cache-Control": "public, max-age=3600"}
    )


@router.get("/static/{name}")
def static(name: str) -> FileResponse:
    path = STATIC / name
    if "/" in name or name.startswith(".") or not path.is_file():
        raise NotFound("Not found.")
    return FileResponse(path, headers={"Cache-Control": "public, max-age=3600"})
