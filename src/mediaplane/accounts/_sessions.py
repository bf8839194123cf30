"""Browser sessions: a random token in an ``HttpOnly``, ``SameSite=Lax`` cookie (``Secure``
over https), a server-side row per session (so signing out everywhere, or disabling the
user, ends it at once), and the CSRF tokens of forms.

CSRF: a form carries ``HMAC(cookie value, "csrf")`` of the session cookie, or before
sign-in of an anonymous ``mp_csrf`` cookie. Only a page of this site can read it; a POST
without it is refused. The same token in an ``X-CSRF-Token`` header lets the browser call
the API with the session (:func:`session_for_api`).

:func:`session_user` is the one place a request's cookie becomes a :class:`User`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from fastapi import Request, Response
from sqlalchemy import ForeignKey, String, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from mediaplane.db import Base, Database, utcnow
from mediaplane.http import ApiError

from ._models import Role, Scope, User, new_id, truncate_address

SESSION_COOKIE = "mp_session"
ANON_COOKIE = "mp_csrf"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
#: A session's ``last_seen_at`` is written at most this often (not on every request).
TOUCH_SECONDS = 60
_MAX_COOKIE = 128
#: What a browser session may do through the API, by role (authz will refine this).
ROLE_SCOPES = {
    Role.VIEWER: Scope.READ,
    Role.CREATOR: Scope.WRITE,
    Role.MODERATOR: Scope.WRITE,
    Role.ADMIN: Scope.ADMIN,
}


class WebSession(Base):
    __tablename__ = "web_sessions"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    user_agent: Mapped[str] = mapped_column(String(300), default="")
    #: The address it signed in from, truncated (:func:`truncate_address`): shown, not tracked.
    address: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()


@dataclass(frozen=True)
class NewSession:
    row: WebSession
    token: str


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def csrf_for(cookie_value: str) -> str:
    """The CSRF token bound to a cookie value (the session's or the anonymous one)."""
    return hmac.new(cookie_value.encode(), b"csrf", hashlib.sha256).hexdigest()


def is_https(request: Request) -> bool:
    """Served over https: directly, or behind a proxy that says so."""
    forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return request.url.scheme == "https" or forwarded == "https"


def set_cookie(request: Request, response: Response, name: str, value: str, seconds: int) -> None:
    """Set one of our cookies: HttpOnly, SameSite=Lax, Secure over https, whole site."""
    response.set_cookie(
        name,
        value,
        max_age=seconds,
        path="/",
        httponly=True,
        samesite="lax",
        secure=is_https(request),
    )


def clear_cookie(request: Request, response: Response, name: str) -> None:
    response.delete_cookie(name, path="/", httponly=True, samesite="lax", secure=is_https(request))


# --- the rows -----------------------------------------------------------------------------


def create_session(
    s: Session, user: User, user_agent: str, seconds: int, *, address: str | None = None
) -> NewSession:
    """A new session for ``user`` good for ``seconds``; returns the row and the cookie value.

    :param address: the client's IP address; only its truncated form is kept.
    """
    token = secrets.token_urlsafe(32)
    row = WebSession(
        token_hash=_digest(token),
        user_id=user.id,
        user_agent=user_agent[:300],
        address=truncate_address(address),
        expires_at=utcnow() + timedelta(seconds=seconds),
    )
    s.add(row)
    s.flush()
    return NewSession(row, token)


def find_session(s: Session, token: str | None) -> tuple[WebSession, User] | None:
    """The live session of a cookie value and its (enabled) user, or None; refreshes the
    session's ``last_seen_at`` now and then."""
    if not token or len(token) > _MAX_COOKIE:
        return None
    row = s.scalars(select(WebSession).where(WebSession.token_hash == _digest(token))).first()
    now = utcnow()
    if row is None or row.revoked_at is not None or row.expires_at <= now:
        return None
    user = s.get(User, row.user_id)
    if user is None or user.disabled:
        return None
    if (now - row.last_seen_at).total_seconds() > TOUCH_SECONDS:
        row.last_seen_at = now
    return row, user


def list_sessions(s: Session, user_id: str) -> list[WebSession]:
    """The user's live sessions, most recently seen first."""
    return list(
        s.scalars(
            select(WebSession)
            .where(
                WebSession.user_id == user_id,
                WebSession.revoked_at.is_(None),
                WebSession.expires_at > utcnow(),
            )
            .order_by(WebSession.last_seen_at.desc())
        )
    )


def end_session(s: Session, token: str | None) -> None:
    """Sign one session out (nothing if the cookie names none)."""
    if token and len(token) <= _MAX_COOKIE:
        s.execute(
            update(WebSession)
            .where(WebSession.token_hash == _digest(token), WebSession.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        )


def end_all_sessions(s: Session, user_id: str) -> int:
    """Sign the user out everywhere; returns how many sessions ended."""
    result = s.execute(
        update(WebSession)
        .where(WebSession.user_id == user_id, WebSession.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    return int(getattr(result, "rowcount", 0) or 0)


# --- requests -----------------------------------------------------------------------------


def _db(request: Request) -> Database:
    db: Database = request.app.state.runtime.db
    return db


def session_user(request: Request) -> User | None:
    """The signed-in user of a request's session cookie, or None (no cookie, signed out,
    expired, user disabled). Blocking (a database read): call it from a thread."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    with _db(request).session() as s:
        found = find_session(s, token)
        if found is None:
            return None
        s.expunge(found[1])
        return found[1]


def csrf_ok(request: Request, presented: str | None) -> bool:
    """Whether ``presented`` is the CSRF token of this request's session or anonymous cookie."""
    if not presented or len(presented) > 128:
        return False
    for name in (SESSION_COOKIE, ANON_COOKIE):
        value = request.cookies.get(name)
        if value and len(value) <= _MAX_COOKIE and hmac.compare_digest(csrf_for(value), presented):
            return True
    return False


def session_for_api(request: Request) -> tuple[User, Scope]:
    """The API's view of a browser session: its user and the scope the user's role grants.
    Needs the session's CSRF token in ``X-CSRF-Token`` (so another site cannot ride the
    cookie). Raises 401 :class:`ApiError`."""
    token = request.cookies.get(SESSION_COOKIE, "")
    if not token or not hmac.compare_digest(
        csrf_for(token[:_MAX_COOKIE]), request.headers.get(CSRF_HEADER, "")[:128]
    ):
        raise ApiError(
            401,
            "unauthorized",
            "Send an API token (Authorization: Bearer), or the session's X-CSRF-Token.",
            headers={"WWW-Authenticate": "Bearer"},
        )
    user = session_user(request)
    if user is None:
        raise ApiError(401, "unauthorized", "The session has ended; sign in again.")
    return user, ROLE_SCOPES[user.role]
