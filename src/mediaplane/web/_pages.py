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
    SESSION_COOKIE,
    PlaybackTokenRejected,
    Principal,
    User,
    Viewer,
    account_facts,
    csrf_for,
    entitle,
    session_lookup,
    session_user,
    sign_page_tokens,
    upload_channels,
    user_principal,
    verify_playback_token,
)
from mediaplane.analytics import account_viewer_id
from mediaplane.catalog import (
    AssetNotFound,
    PlaybackTerms,
    PlaybackView,
    may_read,
    playback_view,
    public_asset_views,
)
from mediaplane.delivery import check_playback
from mediaplane.errors import NotFound
from mediaplane.http import ApiError, runtime_dep
from mediaplane.runtime import Runtime

from ._realtime_pages import realtime_panel

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=str(Path(__file__).with_name("templates")))
STATIC = Path(__file__).with_name("static")
_NO_STORE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}

#: Vendored player files: URL name → path inside node_modules (pinned in package-lock.json).
VENDOR = {
    "shaka-player.compiled.js": "shaka-player/dist/shaka-player.compiled.js",
    "hls.min.js": "hls.js/dist/hls.min.js",
    "dash.all.min.js": "dashjs/dist/modern/umd/dash.all.min.js",
    "htmx.min.js": "htmx.org/dist/htmx.min.js",
    "tus.min.js": "tus-js-client/dist/tus.min.js",
    "uPlot.iife.min.js": "uplot/dist/uPlot.iife.min.js",
    "uPlot.min.css": "uplot/dist/uPlot.min.css",
}


def _assets(rt: Runtime, page: int) -> dict[str, Any]:
    """The public list: only what an anonymous viewer may find and watch."""
    items, total = public_asset_views(rt, limit=50, page=page)
    return listing(items, total, page)


def listing(items: list[dict[str, Any]], total: int, page: int) -> dict[str, Any]:
    """A page of asset cards, and whether the page should poll (anything still processing,
    also ready-but-growing assets)."""
    preparing = any(a["status"] != "errored" and a["progress"] < 100 for a in items)
    return {"assets": items, "total": total, "page": page, "preparing": preparing}


@router.get("/", response_class=HTMLResponse)
def index(request: Request, page: int = Query(1, ge=1), rt: Runtime = Depends(runtime_dep)) -> Any:
    return templates.TemplateResponse(request, "index.html", _assets(rt, page))


@router.get("/_partials/assets", response_class=HTMLResponse)
def assets_partial(
    request: Request, page: int = Query(1, ge=1), rt: Runtime = Depends(runtime_dep)
) -> Any:
    ctx = _assets(rt, page)
    return templates.TemplateResponse(request, "_assets.html", ctx)


@router.get("/upload", response_class=HTMLResponse)
def upload(request: Request, rt: Runtime = Depends(runtime_dep)) -> Any:
    """Resumable uploads from the browser (tus-js-client against /api/v1/uploads): signed
    in, with the session (its CSRF token in a header) into one of the user's channels;
    else with a pasted API token (an operator's key, before any account exists)."""
    user = session_user(request)
    ctx: dict[str, Any] = {"max_bytes": rt.settings.max_upload_bytes, "user": user}
    if user is not None:
        principal = user_principal(user)
        with rt.db.session() as s:
            ctx["channels"] = [(c.id, c.name) for c in upload_channels(s, principal)]
        ctx["csrf"] = csrf_for(request.cookies[SESSION_COOKIE])
        ctx["install_uploads"] = principal.sees_everything  # admins: also the install's own
    return templates.TemplateResponse(
        request,
        "upload.html",
        ctx,
        headers={"Cache-Control": "no-store"} if user is not None else None,
    )


def _policy_of(asset: dict[str, Any], playback_id: str) -> str:
    return next((p["policy"] for p in asset["playback_ids"] if p["id"] == playback_id), "public")


@router.get("/watch/{playback_id}", response_class=HTMLResponse)
def watch(
    request: Request,
    playback_id: str,
    token: str = Query("", max_length=4096),
    rt: Runtime = Depends(runtime_dep),
) -> Any:
    """The player page. A signed playback id plays with the playback token the page was
    opened with (``?token=``, handed on to the player's URLs), or for a signed-in member
    of the asset's channel with tokens the server signs itself (:func:`page_tokens`)."""
    try:
        view = playback_view(rt, playback_id)
    except AssetNotFound:
        raise AssetNotFound("No such video.") from None  # a viewer's words, not an API's
    data = view.asset
    ctx: dict[str, Any] = {"asset": data, "playback_id": playback_id, "tokens": {}}
    try:  # the same decision the origin makes: say it on the page instead of a player error
        check_playback(request, rt.settings, moderation=view.moderation, rights=view.rights)
        if view.rule.gated:
            _check_rule(rt, request, view)
        if _policy_of(data, playback_id) == "signed":
            ctx["tokens"] = _signed_tokens(request, rt, data["id"], playback_id, token)
    except ApiError as refusal:
        ctx["refusal"] = refusal.message
        return templates.TemplateResponse(
            request, "watch.html", ctx, status_code=refusal.status, headers=_NO_STORE
        )
    user = session_user(request)
    ctx["library"] = _library_widget(request, data["id"], user)
    # the QoE snippet's viewer: a keyed hash of the account, the same on every device
    ctx["qoe_viewer"] = account_viewer_id(rt.settings, user.id) if user is not None else None
    # concurrent viewers and live QoE, for whoever may read the asset (its channel, admins)
    ctx["realtime"] = realtime_panel(rt, request, asset_id=data["id"])
    # tokens, a CSRF token, the channel's figures
    private = bool(ctx["tokens"]) or ctx["library"] is not None or ctx["realtime"] is not None
    return templates.TemplateResponse(
        request, "watch.html", ctx, headers=_NO_STORE if private else None
    )


def page_tokens(
    rt: Runtime, principal: Principal, asset_id: str, playback_id: str
) -> dict[str, str] | None:
    """Tokens the server signs itself for a viewer who may see the asset anyway (a member
    of its channel, an admin); None for anyone else."""
    if not may_read(rt, principal, asset_id):
        return None
    with rt.db.session() as s:
        return sign_page_tokens(s, rt.settings, playback_id, principal.user_id)


def _check_token(rt: Runtime, token: str, playback_id: str) -> None:
    """The origin's check of a playback token, made here so that the page says why a token
    will not play (expired, another video's, …) instead of showing a player error."""
    with rt.db.session() as s:
        try:
            verify_playback_token(token, playback_id, "v", session_lookup(s))
        except PlaybackTokenRejected as exc:
            raise ApiError(403, exc.code, exc.message) from None


def _signed_tokens(
    request: Request, rt: Runtime, asset_id: str, playback_id: str, token: str
) -> dict[str, str]:
    """The playback tokens the page's URLs carry for a signed playback id (``v``: video,
    ``t``: thumbnails), or a 403 :class:`ApiError` saying why it cannot play."""
    if token:
        _check_token(rt, token, playback_id)
        return {"v": token}
    user = session_user(request)
    if user is not None:
        minted = page_tokens(rt, user_principal(user), asset_id, playback_id)
        if minted is not None:
            return minted
    raise ApiError(
        403,
        "token_missing",
        "This video plays with a playback token: open the link you were given.",
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


def _library_widget(request: Request, asset_id: str, user: User | None) -> dict[str, str] | None:
    """What the watch page's library buttons need for a signed-in viewer (None otherwise):
    the asset and the session's CSRF token, with which static/library.js calls the API."""
    if user is None:
        return None
    return {"asset_id": asset_id, "csrf": csrf_for(request.cookies[SESSION_COOKIE])}


@router.get("/static/vendor/{name}")
def vendor(name: str, rt: Runtime = Depends(runtime_dep)) -> FileResponse:
    rel = VENDOR.get(name)
    path = rt.settings.effective_node_modules / rel if rel else None
    if path is None or not path.is_file():
        raise NotFound(f"{name} is not installed: run `npm ci`.")
    media = "text/css" if name.endswith(".css") else "text/javascript"
    return FileResponse(path, media_type=media, headers={"Cache-Control": "public, max-age=3600"})


@router.get("/static/{name}")
def static(name: str) -> FileResponse:
    path = STATIC / name
    if "/" in name or name.startswith(".") or not path.is_file():
        raise NotFound("Not found.")
    return FileResponse(path, headers={"Cache-Control": "public, max-age=3600"})
