"""Server-rendered pages: the asset list, the upload page and the watch page. Each page
calls one service function (its routes are plain ``def``: they run in a thread)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.templating import Jinja2Templates

from mediaplane.accounts import INSTALL, SESSION_COOKIE, csrf_for, session_user
from mediaplane.catalog import AssetNotFound, asset_views, playback_view
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


def _assets(rt: Runtime, page: int) -> dict[str, Any]:
    # The pages list every asset, as before; webauth: the session's principal goes here.
    items, total = asset_views(rt, principal=INSTALL, limit=50, page=page, base_url="")
    return {
        "assets": items,
        "total": total,
        "page": page,
        # Poll while anything is still processing (also ready-but-growing assets).
        "preparing": any(a["status"] != "errored" and a["progress"] < 100 for a in items),
    }


@router.get("/", response_class=HTMLResponse)
def index(request: Request, page: int = Query(1, ge=1), rt: Runtime = Depends(runtime_dep)) -> Any:
    return templates.TemplateResponse(request, "index.html", _assets(rt, page))


@router.get("/_partials/assets", response_class=HTMLResponse)
def assets_partial(
    request: Request, page: int = Query(1, ge=1), rt: Runtime = Depends(runtime_dep)
) -> Any:
    return templates.TemplateResponse(request, "_assets.html", _assets(rt, page))


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
    except ApiError as refusal:
        return templates.TemplateResponse(
            request,
            "watch.html",
            {"asset": data, "playback_id": playback_id, "refusal": refusal.message},
            status_code=refusal.status,
        )
    library = _library_widget(request, data["id"])
    return templates.TemplateResponse(
        request,
        "watch.html",
        {"asset": data, "playback_id": playback_id, "library": library},
        headers={"Cache-Control": "no-store"} if library else None,
    )


def _library_widget(request: Request, asset_id: str) -> dict[str, str] | None:
    """What the watch page's library buttons need for a signed-in viewer (None otherwise):
    the asset and the session's CSRF token, with which static/library.js calls the API."""
    if session_user(request) is None:
        return None
    return {"asset_id": asset_id, "csrf": csrf_for(request.cookies[SESSION_COOKIE])}


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
