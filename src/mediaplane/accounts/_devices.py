"""Where a user is signed in: their live web sessions and app sign-ins (refresh-token
families), for the profile page; ending one, or all of them ("sign out everywhere")."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from mediaplane.db import utcnow

from ._app_tokens import revoke_family
from ._errors import NotFound
from ._models import RefreshToken
from ._sessions import WebSession


@dataclass(frozen=True)
class AppSignIn:
    """One app sign-in: every refresh token rotated from it shares ``family_id``.

    :param last_seen_at: when its newest token was issued (the app's last refresh).
    :param user_agent: the user agent of the newest token (None: the app sent none).
    :param address: the truncated address of the newest token.
    """

    family_id: str
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    user_agent: str | None
    address: str | None


def list_app_sign_ins(s: Session, user_id: str) -> list[AppSignIn]:
    """The user's app sign-ins still able to refresh, most recently seen first."""
    now = utcnow()
    first = (
        select(RefreshToken.family_id, func.min(RefreshToken.created_at).label("created_at"))
        .where(RefreshToken.user_id == user_id)
        .group_by(RefreshToken.family_id)
        .subquery()
    )
    live = s.execute(
        select(RefreshToken, first.c.created_at)
        .join(first, first.c.family_id == RefreshToken.family_id)
        .where(
            RefreshToken.user_id == user_id,
            RefreshToken.used_at.is_(None),
            RefreshToken.revoked_at.is_(None),
            RefreshToken.expires_at > now,
        )
        .order_by(RefreshToken.created_at.desc())
    ).all()
    out: dict[str, AppSignIn] = {}
    for row, created in live:
        out.setdefault(
            row.family_id,
            AppSignIn(
                row.family_id,
                created,
                row.created_at,
                row.expires_at,
                row.user_agent,
                row.address,
            ),
        )
    return list(out.values())


def end_app_sign_in(s: Session, user_id: str, family_id: str) -> None:
    """Revoke one of the user's app sign-ins (its refresh tokens stop working at once; an
    access token already issued lives out its few minutes).

    :raises NotFound: no such sign-in of this user.
    """
    owned = s.scalar(
        select(func.count())
        .select_from(RefreshToken)
        .where(RefreshToken.family_id == family_id[:32], RefreshToken.user_id == user_id)
    )
    if not owned:
        raise NotFound("No such sign-in.")
    revoke_family(s, family_id)


def end_session_by_id(s: Session, user_id: str, session_id: str) -> None:
    """Sign one of the user's web sessions out.

    :raises NotFound: no such live session of this user.
    """
    ended = s.execute(
        update(WebSession)
        .where(
            WebSession.id == session_id[:32],
            WebSession.user_id == user_id,
            WebSession.revoked_at.is_(None),
        )
        .values(revoked_at=utcnow())
    )
    if not getattr(ended, "rowcount", 0):
        raise NotFound("No such session.")


@dataclass(frozen=True)
class SignedOut:
    sessions: int
    app_sign_ins: int


def sign_out_everywhere(s: Session, user_id: str, *, keep_session: str | None = None) -> SignedOut:
    """End every web session of the user (but ``keep_session``, when given) and revoke
    every app sign-in. API keys stay: they belong to servers, not devices."""
    sessions = update(WebSession).where(
        WebSession.user_id == user_id, WebSession.revoked_at.is_(None)
    )
    if keep_session is not None:
        sessions = sessions.where(WebSession.id != keep_session)
    ended = s.execute(sessions.values(revoked_at=utcnow()))
    live = len(list_app_sign_ins(s, user_id))
    s.execute(
        update(RefreshToken)
        .where(RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    return SignedOut(int(getattr(ended, "rowcount", 0) or 0), live)
