"""The studio: a signed-in creator's own videos (the assets of their channels) with their
processing status, playback ids and policies, and a form to make a channel."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from mediaplane.accounts import (
    AccountsError,
    User,
    create_channel,
    list_channels,
    role_in,
    session_user,
    user_principal,
)
from mediaplane.catalog import own_asset_views
from mediaplane.errors import Forbidden
from mediaplane.http import runtime_dep
from mediaplane.runtime import Runtime

from ._account_pages import BadForm, checked_form, page, see_other
from ._pages import listing

router = APIRouter(include_in_schema=False)
_CREATORS = ("creator", "admin")


def _studio(rt: Runtime, user: User, page_no: int) -> dict[str, Any]:
    principal = user_principal(user)
    items, total = own_asset_views(rt, principal, limit=50, page=page_no)
    with rt.db.session() as s:
        channels = [
            {"id": c.id, "name": c.name, "role": role_in(s, principal, c.id) or "admin"}
            for c in list_channels(s, principal)
        ]
    names = {c["id"]: c["name"] for c in channels}
    return {
        **listing(items, total, page_no),
        "user": user,
        "channels": channels,
        "channel_names": names,
        "may_create": str(user.role) in _CREATORS,
    }


@router.get("/studio", response_class=HTMLResponse)
def studio(
    request: Request,
    page_no: int = Query(1, ge=1, alias="page"),
    rt: Runtime = Depends(runtime_dep),
) -> Response:
    user = session_user(request)
    if user is None:
        return see_other("/signin?next=" + quote("/studio"))
    return page(request, "studio.html", _studio(rt, user, page_no))


@router.get("/_partials/studio", response_class=HTMLResponse)
def studio_partial(
    request: Request,
    page_no: int = Query(1, ge=1, alias="page"),
    rt: Runtime = Depends(runtime_dep),
) -> Response:
    user = session_user(request)
    if user is None:
        return Response(status_code=401, headers={"Cache-Control": "no-store"})
    return page(request, "_studio_assets.html", _studio(rt, user, page_no))


@router.post("/studio/channels", response_class=HTMLResponse)
async def new_channel(request: Request, rt: Runtime = Depends(runtime_dep)) -> Response:
    user = await run_in_threadpool(session_user, request)
    if user is None:
        return see_other("/signin?next=" + quote("/studio"))
    try:
        form = await checked_form(request)
    except BadForm as exc:
        ctx = await run_in_threadpool(_studio, rt, user, 1)
        return page(request, "studio.html", {**ctx, "error": exc.message}, exc.status)

    def work() -> None:
        with rt.db.session() as s:
            create_channel(s, user_principal(user), form.get("name", ""))

    try:
        await run_in_threadpool(work)
    except (AccountsError, Forbidden) as exc:
        ctx = await run_in_threadpool(_studio, rt, user, 1)
        status = 403 if isinstance(exc, Forbidden) else 400
        return page(request, "studio.html", {**ctx, "error": str(exc)}, status)
    return see_other("/studio")
