"""Admin pages: users (search by e-mail, change role, disable and enable), API keys (create:
shown once; list by prefix; revoke) and signing keys (create: the private key shown once;
list; revoke). Each calls one accounts function.

Only a signed-in admin's session gets them: anyone else signed in gets a 404 (the pages do
not exist for them), someone signed out is sent to sign in (a GET) or gets the 404 (a
POST). Every form carries the session's CSRF token and every POST checks it (after the
admin check, so a stranger learns nothing from it).

:data:`ADMIN_NAV` is the admin menu; another page module adds its pages to it (plans,
grants: ``ADMIN_NAV.append(("/admin/plans", "Plans"))``) and renders them with
:func:`admin_page` behind :func:`admin_user`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

import structlog
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from mediaplane.accounts import (
    AccountsError,
    ApiKey,
    KeySource,
    Role,
    Scope,
    User,
    create_api_key,
    create_signing_key,
    end_all_sessions,
    find_user,
    get_user,
    list_api_keys,
    list_signing_keys,
    list_users,
    page_key_id,
    revoke_api_key,
    revoke_signing_key,
    revoke_user_tokens,
    session_user,
    set_disabled,
    set_role,
)
from mediaplane.accounts import NotFound as AccountNotFound
from mediaplane.http import runtime_dep
from mediaplane.runtime import Runtime

from ._account_pages import BadForm, checked_form, page, see_other

log = structlog.get_logger("mediaplane.web.admin")
router = APIRouter(prefix="/admin", include_in_schema=False)
#: The admin menu: (path, label). Other admin page modules append theirs.
ADMIN_NAV: list[tuple[str, str]] = [
    ("/admin/users", "Users"),
    ("/admin/api-keys", "API keys"),
    ("/admin/signing-keys", "Signing keys"),
]
_PAGE_SIZE = 50


class NotAdmin(Exception):
    """The request is not an admin's: answered with ``response``."""

    def __init__(self, response: Response) -> None:
        super().__init__("not an admin")
        self.response = response


def _not_found(request: Request) -> Response:
    ctx = {"title": "Not found", "message": "There is no such page."}
    return page(request, "notice.html", ctx, 404)


def admin_user(request: Request, *, post: bool = False) -> User:
    """The signed-in admin of this request (blocking: call it from a thread).

    :raises NotAdmin: with a redirect to sign in (a signed-out GET) or a 404 page."""
    user = session_user(request)
    if user is not None and user.role is Role.ADMIN:
        return user
    if user is None and not post:
        raise NotAdmin(see_other("/signin?next=" + quote(request.url.path)))
    raise NotAdmin(_not_found(request))


def admin_page(request: Request, name: str, context: dict[str, Any], status: int = 200) -> Response:
    """Render an admin page: the account page frame (no-store, CSRF) and the admin menu."""
    ctx = {"admin_nav": ADMIN_NAV, "here": request.url.path, **context}
    return page(request, name, ctx, status)


async def _admin_form(request: Request) -> tuple[User, dict[str, str]]:
    """The admin and the CSRF-checked form of an admin POST.

    :raises NotAdmin: not an admin (404), or a form that is refused (its page)."""
    admin = await run_in_threadpool(lambda: admin_user(request, post=True))
    try:
        return admin, await checked_form(request)
    except BadForm as exc:
        ctx = {"title": "Not done", "message": exc.message}
        raise NotAdmin(admin_page(request, "notice.html", ctx, exc.status)) from None


def _problem(request: Request, message: str, status: int = 400) -> Response:
    return admin_page(request, "notice.html", {"title": "Not done", "message": message}, status)


@router.get("", response_class=HTMLResponse)
def admin_home(request: Request) -> Response:
    try:
        admin_user(request)
    except NotAdmin as exc:
        return exc.response
    return see_other("/admin/users")


# --- users --------------------------------------------------------------------------------


@router.get("/users", response_class=HTMLResponse)
def users_page(
    request: Request,
    q: str = Query("", max_length=254),
    page_no: int = Query(1, ge=1, le=100_000, alias="page"),
    rt: Runtime = Depends(runtime_dep),
) -> Response:
    try:
        admin = admin_user(request)
    except NotAdmin as exc:
        return exc.response
    with rt.db.session() as s:
        users, total = list_users(s, email_contains=q, limit=_PAGE_SIZE, page=page_no)
        s.expunge_all()
    ctx = {
        "users": users,
        "total": total,
        "q": q,
        "page": page_no,
        "pages": max(1, -(-total // _PAGE_SIZE)),
        "roles": list(Role),
        "me": admin.id,
    }
    return admin_page(request, "admin_users.html", ctx)


def _back_to_users(form: dict[str, str]) -> Response:
    q = form.get("q", "")[:254]
    return see_other("/admin/users" + (("?" + urlencode({"q": q})) if q else ""))


@router.post("/users/{user_id}/role", response_class=HTMLResponse)
async def change_role(
    user_id: str, request: Request, rt: Runtime = Depends(runtime_dep)
) -> Response:
    try:
        admin, form = await _admin_form(request)
    except NotAdmin as exc:
        return exc.response
    if user_id == admin.id:
        return _problem(request, "You cannot change your own role; another admin can.")

    def work() -> None:
        with rt.db.session() as s:
            set_role(s, user_id, form.get("role", ""))

    try:
        await run_in_threadpool(work)
    except AccountNotFound:
        return _problem(request, "There is no such user.", 404)
    except AccountsError as exc:
        return _problem(request, exc.message)
    log.info("admin.user_role_changed", user_id=user_id, role=form.get("role"), by=admin.id)
    return _back_to_users(form)


async def _set_disabled(user_id: str, request: Request, rt: Runtime, disabled: bool) -> Response:
    try:
        admin, form = await _admin_form(request)
    except NotAdmin as exc:
        return exc.response
    if user_id == admin.id:
        return _problem(request, "You cannot disable your own account; another admin can.")

    def work() -> None:
        with rt.db.session() as s:
            set_disabled(s, user_id, disabled)
            if disabled:  # they stop at once anyway; re-enabling must not revive them
                end_all_sessions(s, user_id)
                revoke_user_tokens(s, user_id)

    try:
        await run_in_threadpool(work)
    except AccountNotFound:
        return _problem(request, "There is no such user.", 404)
    log.info(
        "admin.user_disabled" if disabled else "admin.user_enabled", user_id=user_id, by=admin.id
    )
    return _back_to_users(form)


@router.post("/users/{user_id}/disable", response_class=HTMLResponse)
async def disable_user(
    user_id: str, request: Request, rt: Runtime = Depends(runtime_dep)
) -> Response:
    return await _set_disabled(user_id, request, rt, True)


@router.post("/users/{user_id}/enable", response_class=HTMLResponse)
async def enable_user(
    user_id: str, request: Request, rt: Runtime = Depends(runtime_dep)
) -> Response:
    return await _set_disabled(user_id, request, rt, False)


# --- API keys -----------------------------------------------------------------------------


def _keys_context(rt: Runtime, include_revoked: bool) -> dict[str, Any]:
    with rt.db.session() as s:
        keys: list[ApiKey] = list_api_keys(s, include_revoked=include_revoked)
        owners = {k.user_id for k in keys if k.user_id}
        emails = {uid: get_user(s, uid).email for uid in owners}
        s.expunge_all()
    return {
        "keys": keys,
        "owners": emails,
        "scopes": list(Scope),
        "include_revoked": include_revoked,
        "admin_token_source": KeySource.ADMIN_TOKEN,
    }


@router.get("/api-keys", response_class=HTMLResponse)
def api_keys_page(
    request: Request, revoked: bool = False, rt: Runtime = Depends(runtime_dep)
) -> Response:
    try:
        admin_user(request)
    except NotAdmin as exc:
        return exc.response
    return admin_page(request, "admin_api_keys.html", _keys_context(rt, revoked))


@router.post("/api-keys", response_class=HTMLResponse)
async def new_api_key(request: Request, rt: Runtime = Depends(runtime_dep)) -> Response:
    try:
        admin, form = await _admin_form(request)
    except NotAdmin as exc:
        return exc.response
    owner_email = form.get("owner", "").strip()

    def work() -> tuple[str, str, str]:
        with rt.db.session() as s:
            owner = find_user(s, owner_email) if owner_email else None
            if owner_email and owner is None:
                raise AccountsError("No user has this e-mail address.", "invalid_user")
            new = create_api_key(
                s, form.get("scope", ""), form.get("name", ""), owner.id if owner else None
            )
            return new.row.id, new.row.prefix, new.key

    try:
        key_id, prefix, key = await run_in_threadpool(work)
    except AccountsError as exc:
        ctx = await run_in_threadpool(_keys_context, rt, False)
        return admin_page(request, "admin_api_keys.html", {**ctx, "error": exc.message}, 400)
    log.info("admin.api_key_created", key_id=key_id, prefix=prefix, by=admin.id)
    ctx = await run_in_threadpool(_keys_context, rt, False)
    return admin_page(request, "admin_api_keys.html", {**ctx, "new_key": key, "new_prefix": prefix})


@router.post("/api-keys/{key_id}/revoke", response_class=HTMLResponse)
async def revoke_key(key_id: str, request: Request, rt: Runtime = Depends(runtime_dep)) -> Response:
    try:
        admin, _ = await _admin_form(request)
    except NotAdmin as exc:
        return exc.response

    def work() -> None:
        with rt.db.session() as s:
            row = s.get(ApiKey, key_id)
            if row is not None and row.source is KeySource.ADMIN_TOKEN:
                raise AccountsError(
                    "The admin token is revoked by configuring another one "
                    "(MEDIAPLANE_ADMIN_TOKEN or the admin-token file), not here.",
                    "admin_token",
                )
            revoke_api_key(s, key_id)

    try:
        await run_in_threadpool(work)
    except AccountNotFound:
        return _problem(request, "There is no such API key.", 404)
    except AccountsError as exc:
        return _problem(request, exc.message)
    log.info("admin.api_key_revoked", key_id=key_id, by=admin.id)
    return see_other("/admin/api-keys")


# --- signing keys -------------------------------------------------------------------------


def _signing_context(rt: Runtime) -> dict[str, Any]:
    with rt.db.session() as s:
        keys = list_signing_keys(s)
        s.expunge_all()
    return {"keys": keys, "page_key": page_key_id(rt.settings)}


@router.get("/signing-keys", response_class=HTMLResponse)
def signing_keys_page(request: Request, rt: Runtime = Depends(runtime_dep)) -> Response:
    try:
        admin_user(request)
    except NotAdmin as exc:
        return exc.response
    return admin_page(request, "admin_signing_keys.html", _signing_context(rt))


@router.post("/signing-keys", response_class=HTMLResponse)
async def new_signing_key(request: Request, rt: Runtime = Depends(runtime_dep)) -> Response:
    try:
        admin, _ = await _admin_form(request)
    except NotAdmin as exc:
        return exc.response

    def work() -> tuple[str, str]:
        with rt.db.session() as s:
            new = create_signing_key(s)
            return new.row.id, new.private_key

    key_id, private_key = await run_in_threadpool(work)
    log.info("admin.signing_key_created", key_id=key_id, by=admin.id)
    ctx = await run_in_threadpool(_signing_context, rt)
    extra = {"new_id": key_id, "new_private_key": private_key}
    return admin_page(request, "admin_signing_keys.html", {**ctx, **extra})


@router.post("/signing-keys/{key_id}/revoke", response_class=HTMLResponse)
async def revoke_signing(
    key_id: str, request: Request, rt: Runtime = Depends(runtime_dep)
) -> Response:
    try:
        admin, _ = await _admin_form(request)
    except NotAdmin as exc:
        return exc.response

    def work() -> None:
        with rt.db.session() as s:
            revoke_signing_key(s, key_id)

    try:
        await run_in_threadpool(work)
    except AccountNotFound:
        return _problem(request, "There is no such signing key.", 404)
    log.info("admin.signing_key_revoked", key_id=key_id, by=admin.id)
    return see_other("/admin/signing-keys")
