"""Admin pages for access: plans (the channels they cover, their stream limit) and grants
(subscriptions, rentals, purchases). For a signed-in admin's session only; every form
carries the session's CSRF token and every POST checks it (the account pages' helpers).
Each page calls one accounts function, like the API (/api/v1/plans, /api/v1/grants).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import quote

import structlog
from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from mediaplane.accounts import (
    INSTALL,
    AccountsError,
    GrantInput,
    GrantKind,
    NotFound,
    Role,
    User,
    create_grant,
    create_plan,
    delete_plan,
    find_user,
    list_channels,
    list_grants,
    list_plans,
    plan_channel_ids,
    revoke_grant,
)
from mediaplane.http import runtime_dep
from mediaplane.runtime import Runtime

from ._account_pages import BadForm, _checked_form, _current, _notice, _redirect
from ._admin_pages import ADMIN_NAV, admin_page

log = structlog.get_logger("mediaplane.web.access")
router = APIRouter(include_in_schema=False)
ADMIN_NAV.extend([("/admin/plans", "Plans"), ("/admin/grants", "Grants")])


def _admin(rt: Runtime, request: Request, here: str) -> User | Response:
    """The session's admin, or the answer for anyone else (sign in first; 403 otherwise)."""
    found = _current(rt, request)
    if found is None:
        return _redirect("/signin?next=" + quote(here))
    if found[1].role is not Role.ADMIN:
        return _notice(request, "Admins only", "This page is for admins.", 403)
    return found[1]


def _plans_context(rt: Runtime) -> dict[str, Any]:
    with rt.db.session() as s:
        plans = [
            {"id": p.id, "name": p.name, "max_streams": p.max_streams,
             "channel_ids": plan_channel_ids(s, p.id)}
            for p in list_plans(s)
        ]  # fmt: skip
        channels = [{"id": c.id, "name": c.name} for c in list_channels(s, INSTALL)]
    return {"plans": plans, "channels": channels}


def _plans_page(
    request: Request, rt: Runtime, error: str | None = None, status: int = 200
) -> Response:
    return admin_page(request, "admin_plans.html", {**_plans_context(rt), "error": error}, status)


@router.get("/admin/plans", response_class=HTMLResponse)
def plans_page(request: Request, rt: Runtime = Depends(runtime_dep)) -> Response:
    who = _admin(rt, request, "/admin/plans")
    return who if isinstance(who, Response) else _plans_page(request, rt)


def _streams(text: str) -> int | None:
    text = text.strip()
    if not text:
        return None
    if not text.isdigit() or len(text) > 6:
        raise BadForm("Concurrent streams is a whole number (or empty for no limit).")
    return int(text)


@router.post("/admin/plans", response_class=HTMLResponse)
async def create_plan_submit(request: Request, rt: Runtime = Depends(runtime_dep)) -> Response:
    who = await run_in_threadpool(_admin, rt, request, "/admin/plans")
    if isinstance(who, Response):
        return who
    try:
        form = await _checked_form(request)
        streams = _streams(form.get("max_streams", ""))
    except BadForm as exc:
        return await run_in_threadpool(_plans_page, request, rt, exc.message, exc.status)
    channel_ids = form.get("channel_ids", "").replace(",", " ").split()

    def work() -> str:
        with rt.db.session() as s:
            return create_plan(s, form.get("name", ""), channel_ids, streams).id

    try:
        plan_id = await run_in_threadpool(work)
    except AccountsError as exc:
        return await run_in_threadpool(_plans_page, request, rt, exc.message, 400)
    log.info("access.plan_created", plan_id=plan_id, by=who.id)
    return _redirect("/admin/plans")


@router.post("/admin/plans/{plan_id}/delete", response_class=HTMLResponse)
async def delete_plan_submit(
    plan_id: str, request: Request, rt: Runtime = Depends(runtime_dep)
) -> Response:
    who = await run_in_threadpool(_admin, rt, request, "/admin/plans")
    if isinstance(who, Response):
        return who
    try:
        await _checked_form(request)
    except BadForm as exc:
        return await run_in_threadpool(_plans_page, request, rt, exc.message, exc.status)

    def work() -> None:
        with rt.db.session() as s:
            delete_plan(s, plan_id)

    try:
        await run_in_threadpool(work)
    except NotFound as exc:
        return await run_in_threadpool(_plans_page, request, rt, exc.message, 404)
    log.info("access.plan_deleted", plan_id=plan_id, by=who.id)
    return _redirect("/admin/plans")


# --- grants -------------------------------------------------------------------------------


def _grants_page(
    request: Request,
    rt: Runtime,
    error: str | None = None,
    status: int = 200,
    form: dict[str, str] | None = None,
) -> Response:
    with rt.db.session() as s:
        grants = [
            {"id": g.id, "user_id": g.user_id, "kind": str(g.kind), "plan_id": g.plan_id,
             "asset_id": g.asset_id, "window_hours": g.window_hours,
             "expires_at": g.expires_at, "started_at": g.started_at}
            for g in list_grants(s, limit=200)
        ]  # fmt: skip
        plans = [{"id": p.id, "name": p.name} for p in list_plans(s)]
    ctx = {"grants": grants, "plans": plans, "kinds": list(GrantKind), "form": form or {}}
    return admin_page(request, "admin_grants.html", {**ctx, "error": error}, status)


@router.get("/admin/grants", response_class=HTMLResponse)
def grants_page(request: Request, rt: Runtime = Depends(runtime_dep)) -> Response:
    who = _admin(rt, request, "/admin/grants")
    return who if isinstance(who, Response) else _grants_page(request, rt)


def _grant_input(rt: Runtime, form: dict[str, str]) -> GrantInput:
    """The grant a form asks for; the user by id or e-mail address."""
    who = form.get("user", "").strip()
    try:
        kind = GrantKind(form.get("kind", ""))
    except ValueError:
        raise BadForm("Choose a kind: subscription, rental or purchase.") from None
    hours_text = form.get("window_hours", "").strip()
    if hours_text and (not hours_text.isdigit() or len(hours_text) > 6):
        raise BadForm("The rental window is a whole number of hours.")
    expires_text = form.get("expires_at", "").strip()
    try:
        expires = datetime.fromisoformat(expires_text) if expires_text else None
    except ValueError:
        raise BadForm("Expires at is a date and time like 2030-01-31T00:00:00Z.") from None
    user_id = who
    if "@" in who:
        with rt.db.session() as s:
            user = find_user(s, who)
            if user is None:
                raise BadForm("No account has this e-mail address.")
            user_id = user.id
    return GrantInput(
        user_id[:32],
        kind,
        plan_id=form.get("plan_id", "").strip()[:32] or None,
        asset_id=form.get("asset_id", "").strip()[:32] or None,
        window_hours=int(hours_text) if hours_text else None,
        expires_at=expires,
    )


@router.post("/admin/grants", response_class=HTMLResponse)
async def create_grant_submit(request: Request, rt: Runtime = Depends(runtime_dep)) -> Response:
    who = await run_in_threadpool(_admin, rt, request, "/admin/grants")
    if isinstance(who, Response):
        return who
    form: dict[str, str] = {}
    try:
        form = await _checked_form(request)
        new = await run_in_threadpool(_grant_input, rt, form)
    except BadForm as exc:
        return await run_in_threadpool(_grants_page, request, rt, exc.message, exc.status, form)
    if new.kind is not GrantKind.SUBSCRIPTION:  # the form sends every field: keep the kind's
        new = GrantInput(new.user_id, new.kind, None, new.asset_id, new.window_hours, None)
    else:
        new = GrantInput(new.user_id, new.kind, new.plan_id, None, None, new.expires_at)

    def work() -> str:
        with rt.db.session() as s:
            return create_grant(s, new).id

    try:
        grant_id = await run_in_threadpool(work)
    except AccountsError as exc:
        return await run_in_threadpool(_grants_page, request, rt, exc.message, 400, form)
    log.info("access.grant_created", grant_id=grant_id, kind=str(new.kind), by=who.id)
    return _redirect("/admin/grants")


@router.post("/admin/grants/{grant_id}/revoke", response_class=HTMLResponse)
async def revoke_grant_submit(
    grant_id: str, request: Request, rt: Runtime = Depends(runtime_dep)
) -> Response:
    who = await run_in_threadpool(_admin, rt, request, "/admin/grants")
    if isinstance(who, Response):
        return who
    try:
        await _checked_form(request)
    except BadForm as exc:
        return await run_in_threadpool(_grants_page, request, rt, exc.message, exc.status)

    def work() -> None:
        with rt.db.session() as s:
            revoke_grant(s, grant_id)

    try:
        await run_in_threadpool(work)
    except NotFound as exc:
        return await run_in_threadpool(_grants_page, request, rt, exc.message, 404)
    log.info("access.grant_revoked", grant_id=grant_id, by=who.id)
    return _redirect("/admin/grants")
