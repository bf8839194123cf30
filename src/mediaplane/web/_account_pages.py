"""Account pages: sign-up, e-mail verification, sign-in, sign-out, password reset, and the
profile with its browser sessions and app sign-ins (end one, "sign out everywhere"). Each
calls one accounts function.

Every form carries a CSRF token and every POST checks it; bodies are read through a
bounded reader and parsed here (URL-encoded only, a few short fields). Tokens travel in the
query string, which the access log leaves out; these pages are never cached and send no
Referer.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote

import structlog
from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from mediaplane.accounts import (
    ANON_COOKIE,
    CSRF_FIELD,
    SESSION_COOKIE,
    AccountsError,
    AuthenticationFailed,
    EmailNotVerified,
    Mail,
    Mailer,
    MailNotSent,
    SignInGuard,
    SignInThrottled,
    TokenInvalid,
    User,
    WebPolicy,
    WebSession,
    clear_cookie,
    csrf_for,
    csrf_ok,
    end_app_sign_in,
    end_session,
    end_session_by_id,
    find_session,
    finish_reset,
    list_app_sign_ins,
    list_sessions,
    local_next,
    mailer_for,
    peek_email_token,
    redis_client,
    request_reset,
    set_cookie,
    sign_in_session,
    sign_out_everywhere,
    sign_up,
    signin_guard,
    verify_email,
)
from mediaplane.accounts import EmailPurpose as Purpose
from mediaplane.accounts import NotFound as AccountNotFound
from mediaplane.http import ApiError, read_small_body, runtime_dep
from mediaplane.runtime import Runtime

from ._pages import templates

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

log = structlog.get_logger("mediaplane.web.accounts")
router = APIRouter(include_in_schema=False)
_FORM_LIMIT = 8 * 1024
_FIELD_LIMIT = 4096
_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
_ANON_SECONDS = 86400
_state_lock = threading.Lock()


class BadForm(Exception):
    """A form we cannot read (wrong type, too large, garbage): answered 400 on the page."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


# --- per-app state --------------------------------------------------------------------------


def guard(request: Request) -> SignInGuard:
    """This app's sign-in brakes (made on first use from the settings)."""
    state = request.app.state
    with _state_lock:
        if getattr(state, "signin_guard", None) is None:
            settings = state.runtime.settings
            state.signin_guard = signin_guard(settings, redis_client(settings))
        found: SignInGuard = state.signin_guard
    return found


def mailer(request: Request) -> Mailer:
    state = request.app.state
    with _state_lock:
        if getattr(state, "mailer", None) is None:
            state.mailer = mailer_for(state.runtime.settings)
        found: Mailer = state.mailer
    return found


# --- forms and pages ------------------------------------------------------------------------


async def _form(request: Request) -> dict[str, str]:
    """The URL-encoded form of a POST: first value of each field, bounded in size."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise BadForm("Send the form from its page.", 415)
    try:
        raw = (await read_small_body(request, _FORM_LIMIT)).decode("utf-8")
        fields = parse_qs(raw, keep_blank_values=True, max_num_fields=16)
    except ApiError as exc:  # 413: the rest of the body is unread, so the connection closes
        raise BadForm("The form is too large.", exc.status) from None
    except (UnicodeDecodeError, ValueError):
        raise BadForm("The form could not be read.") from None
    out = {k: v[0] for k, v in fields.items() if v}
    if any(len(v) > _FIELD_LIMIT or "\x00" in v for v in out.values()):
        raise BadForm("A field is too long or holds characters we cannot take.")
    return out


def _csrf(request: Request) -> tuple[str, str | None]:
    """The CSRF token for a page's forms, and a new anonymous cookie value to set (or None)."""
    for name in (SESSION_COOKIE, ANON_COOKIE):
        value = request.cookies.get(name)
        if value and len(value) <= 128:
            return csrf_for(value), None
    fresh = secrets.token_urlsafe(32)
    return csrf_for(fresh), fresh


def page(
    request: Request, name: str, context: dict[str, Any] | None = None, status: int = 200
) -> Response:
    """Render an account page (no-store, CSRF token in ``csrf``, anonymous cookie set)."""
    token, fresh = _csrf(request)
    headers = _HEADERS | ({"Connection": "close"} if status == 413 else {})
    response = templates.TemplateResponse(
        request, name, {"csrf": token, **(context or {})}, status_code=status, headers=headers
    )
    if fresh:
        set_cookie(request, response, ANON_COOKIE, fresh, _ANON_SECONDS)
    return response


def _notice(request: Request, title: str, message: str, status: int = 200) -> Response:
    return page(request, "notice.html", {"title": title, "message": message}, status)


async def _checked_form(request: Request) -> dict[str, str]:
    form = await _form(request)
    if not csrf_ok(request, form.get(CSRF_FIELD)):
        raise BadForm("This form has expired. Reload the page and try again.", 403)
    return form


def _redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303, headers=_HEADERS)


def _send(request: Request, mail: Mail | None) -> None:
    if mail is not None:
        mailer(request).send(mail)


def _current(rt: Runtime, request: Request) -> tuple[WebSession, User] | None:
    with rt.db.session() as s:
        found = find_session(s, request.cookies.get(SESSION_COOKIE))
        if found is not None:
            s.expunge_all()
        return found


# --- sign-up and verification -------------------------------------------------------------


@router.get("/signup", response_class=HTMLResponse)
def signup_page(request: Request) -> Response:
    return page(request, "signup.html")


@router.post("/signup", response_class=HTMLResponse)
async def signup_submit(request: Request, rt: Runtime = Depends(runtime_dep)) -> Response:
    try:
        form = await _checked_form(request)
    except BadForm as exc:
        return page(request, "signup.html", {"error": exc.message}, exc.status)
    email = form.get("email", "")
    policy = WebPolicy.from_settings(rt.settings)

    def work() -> None:
        with rt.db.session() as s:
            mail = sign_up(s, policy, email, form.get("password", ""))
        _send(request, mail)  # after the commit

    try:
        await run_in_threadpool(work)
    except MailNotSent as exc:
        return _notice(request, "Mail not sent", exc.message, 503)
    except AccountsError as exc:
        ctx = {"error": exc.message, "email": email[:254]}
        return page(request, "signup.html", ctx, 400)
    return _notice(
        request,
        "Check your e-mail",
        "We sent a link to confirm your address. Open it, then sign in.",
    )


@router.get("/verify", response_class=HTMLResponse)
def verify(request: Request, token: str = "", rt: Runtime = Depends(runtime_dep)) -> Response:
    try:
        with rt.db.session() as s:
            user_id = verify_email(s, token[:200]).id
    except TokenInvalid as exc:
        return _notice(request, "Link not valid", exc.message, 400)
    log.info("accounts.email_verified", user_id=user_id)
    return _notice(request, "Address confirmed", "Your e-mail address is confirmed. Sign in.")


# --- sign-in and sign-out -----------------------------------------------------------------


@router.get("/signin", response_class=HTMLResponse)
def signin_page(
    request: Request,
    next: str = "",  # noqa: A002 (the parameter)
    rt: Runtime = Depends(runtime_dep),
) -> Response:
    ctx = {"next": local_next(next), "providers": rt.settings.oidc_providers}
    return page(request, "signin.html", ctx)


def _address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@router.post("/signin", response_class=HTMLResponse)
async def signin_submit(request: Request, rt: Runtime = Depends(runtime_dep)) -> Response:
    try:
        form = await _checked_form(request)
    except BadForm as exc:
        return page(request, "signin.html", {"error": exc.message, "next": "/"}, exc.status)
    target = local_next(form.get("next"))
    email = form.get("email", "")
    policy = WebPolicy.from_settings(rt.settings)
    brakes = guard(request)
    agent = request.headers.get("user-agent", "")

    def work() -> str:
        with rt.db.session() as s:
            new = sign_in_session(
                s, policy, brakes, email, form.get("password", ""),
                address=_address(request), user_agent=agent,
            )  # fmt: skip
            end_session(s, request.cookies.get(SESSION_COOKIE))  # one browser, one session
            log.info("accounts.signed_in", user_id=new.row.user_id, session_id=new.row.id)
            return new.token

    ctx: dict[str, Any] = {"next": target, "email": email[:254]}
    try:
        token = await run_in_threadpool(work)
    except SignInThrottled as exc:
        response = page(request, "signin.html", {**ctx, "error": exc.message}, 429)
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    except EmailNotVerified as exc:
        return page(request, "signin.html", {**ctx, "error": exc.message}, 403)
    except AuthenticationFailed as exc:
        return page(request, "signin.html", {**ctx, "error": exc.message}, 401)
    response = _redirect(target)
    set_cookie(request, response, SESSION_COOKIE, token, policy.session_seconds)
    return response


@router.post("/signout", response_class=HTMLResponse)
async def signout(request: Request, rt: Runtime = Depends(runtime_dep)) -> Response:
    try:
        await _checked_form(request)
    except BadForm as exc:
        return _notice(request, "Not signed out", exc.message, exc.status)

    def work() -> None:
        with rt.db.session() as s:
            end_session(s, request.cookies.get(SESSION_COOKIE))

    await run_in_threadpool(work)
    response = _redirect("/signin")
    clear_cookie(request, response, SESSION_COOKIE)
    return response


# --- password reset -----------------------------------------------------------------------


@router.get("/reset", response_class=HTMLResponse)
def reset_page(request: Request) -> Response:
    return page(request, "reset.html")


@router.post("/reset", response_class=HTMLResponse)
async def reset_submit(request: Request, rt: Runtime = Depends(runtime_dep)) -> Response:
    try:
        form = await _checked_form(request)
    except BadForm as exc:
        return page(request, "reset.html", {"error": exc.message}, exc.status)
    policy = WebPolicy.from_settings(rt.settings)

    def work() -> None:
        with rt.db.session() as s:
            mail = request_reset(s, policy, form.get("email", ""))
        _send(request, mail)

    try:
        await run_in_threadpool(work)
    except MailNotSent as exc:
        return _notice(request, "Mail not sent", exc.message, 503)
    return _notice(
        request,
        "Check your e-mail",
        "If an account has this address, we sent it a link to choose a new password.",
    )


@router.get("/reset/confirm", response_class=HTMLResponse)
def reset_confirm_page(
    request: Request, token: str = "", rt: Runtime = Depends(runtime_dep)
) -> Response:
    with rt.db.session() as s:
        good = peek_email_token(s, token[:200], Purpose.RESET)
    if not good:
        return _notice(request, "Link not valid", "This link is not valid any more.", 400)
    return page(request, "reset_confirm.html", {"token": token})


@router.post("/reset/confirm", response_class=HTMLResponse)
async def reset_confirm_submit(request: Request, rt: Runtime = Depends(runtime_dep)) -> Response:
    try:
        form = await _checked_form(request)
    except BadForm as exc:
        return _notice(request, "Password not changed", exc.message, exc.status)
    token = form.get("token", "")

    def work() -> str:
        with rt.db.session() as s:
            return finish_reset(s, token, form.get("password", "")).id

    try:
        user_id = await run_in_threadpool(work)
    except TokenInvalid as exc:
        return _notice(request, "Link not valid", exc.message, 400)
    except AccountsError as exc:
        return page(request, "reset_confirm.html", {"token": token, "error": exc.message}, 400)
    log.info("accounts.password_reset", user_id=user_id)
    response = _redirect("/signin")
    clear_cookie(request, response, SESSION_COOKIE)
    return response


# --- profile ------------------------------------------------------------------------------


@router.get("/profile", response_class=HTMLResponse)
def profile(request: Request, rt: Runtime = Depends(runtime_dep)) -> Response:
    found = _current(rt, request)
    if found is None:
        return _redirect("/signin?next=" + quote("/profile"))
    current, user = found
    with rt.db.session() as s:
        sessions = list_sessions(s, user.id)
        apps = list_app_sign_ins(s, user.id)
        s.expunge_all()
    ctx = {"user": user, "sessions": sessions, "apps": apps, "current_id": current.id}
    return page(request, "profile.html", ctx)


async def _profile_action(
    request: Request, rt: Runtime, work: Callable[[Session, WebSession], object]
) -> Response | None:
    """A profile form: CSRF checked, the current session found, ``work(s, current)`` done.
    Returns the page to answer with when it could not be done, None when it was."""
    try:
        await _checked_form(request)
    except BadForm as exc:
        return _notice(request, "Not signed out", exc.message, exc.status)

    def run() -> bool:
        found = _current(rt, request)
        if found is None:
            return False
        with rt.db.session() as s:
            work(s, found[0])
        return True

    try:
        if not await run_in_threadpool(run):
            return _redirect("/signin?next=" + quote("/profile"))
    except AccountNotFound as exc:
        return _notice(request, "Not found", exc.message, 404)
    return None


@router.post("/profile/sessions/{session_id}/end", response_class=HTMLResponse)
async def end_one_session(
    session_id: str, request: Request, rt: Runtime = Depends(runtime_dep)
) -> Response:
    """Sign one of the user's browsers out (this one too, if it is the one named)."""
    ended_here = False

    def work(s: Session, current: WebSession) -> None:
        nonlocal ended_here
        end_session_by_id(s, current.user_id, session_id)
        ended_here = session_id == current.id
        log.info("accounts.session_ended", user_id=current.user_id, session_id=session_id[:32])

    refused = await _profile_action(request, rt, work)
    if refused is not None:
        return refused
    if ended_here:
        response = _redirect("/signin")
        clear_cookie(request, response, SESSION_COOKIE)
        return response
    return _redirect("/profile")


@router.post("/profile/apps/{family_id}/end", response_class=HTMLResponse)
async def end_one_app(
    family_id: str, request: Request, rt: Runtime = Depends(runtime_dep)
) -> Response:
    """Revoke one app sign-in (its refresh tokens stop working at once)."""

    def work(s: Session, current: WebSession) -> None:
        end_app_sign_in(s, current.user_id, family_id)
        log.info("accounts.app_sign_in_ended", user_id=current.user_id, family_id=family_id[:32])

    return await _profile_action(request, rt, work) or _redirect("/profile")


@router.post("/profile/signout-others", response_class=HTMLResponse)
async def signout_others(request: Request, rt: Runtime = Depends(runtime_dep)) -> Response:
    """Sign out every other browser and every app; this browser stays signed in."""

    def work(s: Session, current: WebSession) -> None:
        done = sign_out_everywhere(s, current.user_id, keep_session=current.id)
        log.info(
            "accounts.signed_out_elsewhere",
            user_id=current.user_id,
            sessions=done.sessions,
            apps=done.app_sign_ins,
        )

    return await _profile_action(request, rt, work) or _redirect("/profile")


@router.post("/profile/signout-everywhere", response_class=HTMLResponse)
async def signout_everywhere(request: Request, rt: Runtime = Depends(runtime_dep)) -> Response:
    """Sign out every browser (this one too) and every app."""

    def work(s: Session, current: WebSession) -> None:
        done = sign_out_everywhere(s, current.user_id)
        log.info(
            "accounts.signed_out_everywhere",
            user_id=current.user_id,
            sessions=done.sessions,
            apps=done.app_sign_ins,
        )

    refused = await _profile_action(request, rt, work)
    if refused is not None and refused.status_code != 303:
        return refused
    response = _redirect("/signin")
    clear_cookie(request, response, SESSION_COOKIE)
    return response


# --- for the other page modules (studio, admin) ---------------------------------------------

checked_form = _checked_form
see_other = _redirect
current_session = _current
