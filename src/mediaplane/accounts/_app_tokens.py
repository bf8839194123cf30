"""Tokens for apps: short-lived JWT access tokens (HS256, the server secret) and rotating
refresh tokens. A refresh token works once; presenting it again revokes its whole family
(every token rotated from the same sign-in), since one of the two holders is a thief."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from mediaplane.db import utcnow

from ._errors import RefreshTokenReused, TokenInvalid
from ._models import RefreshToken, Role, User, new_id, truncate_address

ISSUER = "mediaplane"
_AUDIENCE = "mediaplane-api"
_REFRESH_PREFIX = "mprt_"


@dataclass(frozen=True)
class TokenPolicy:
    """How tokens are signed and how long they live.

    :param secret: the HS256 key (:func:`mediaplane.accounts.ensure_secret_key`).
    :param access_seconds: lifetime of an access token.
    :param refresh_seconds: lifetime of a refresh token (each rotation starts a new one).
    """

    secret: str
    access_seconds: int = 900
    refresh_seconds: int = 30 * 86400


@dataclass(frozen=True)
class AccessClaims:
    user_id: str
    role: Role
    expires_at: datetime


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int  # seconds the access token lives


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_access_token(policy: TokenPolicy, user: User) -> str:
    now = utcnow()
    claims = {
        "iss": ISSUER,
        "aud": _AUDIENCE,
        "sub": user.id,
        "role": str(user.role),
        "iat": now,
        "exp": now + timedelta(seconds=policy.access_seconds),
        "jti": new_id(16),
    }
    return jwt.encode(claims, policy.secret, algorithm="HS256")


def verify_access_token(policy: TokenPolicy, token: str) -> AccessClaims:
    """The claims of a valid access token (signature, issuer, audience and expiry checked).

    It does not look the user up: a caller that must stop a disabled user at once checks
    ``user.disabled`` too (the token lives :attr:`TokenPolicy.access_seconds` at most).
    """
    try:
        claims = jwt.decode(
            token,
            policy.secret,
            algorithms=["HS256"],
            audience=_AUDIENCE,
            issuer=ISSUER,
            options={"require": ["exp", "sub", "aud", "iss"]},
        )
        return AccessClaims(
            claims["sub"], Role(claims["role"]), datetime.fromtimestamp(claims["exp"], UTC)
        )
    except (jwt.InvalidTokenError, KeyError, ValueError):
        raise TokenInvalid("The access token is not valid or has expired.") from None


@dataclass(frozen=True)
class Device:
    """What an app says about itself when it signs in or refreshes (for the profile page).

    :param user_agent: its ``User-Agent`` header.
    :param address: its IP address; only the truncated form is kept.
    """

    user_agent: str = ""
    address: str | None = None


def _new_refresh(
    s: Session,
    policy: TokenPolicy,
    user_id: str,
    family_id: str,
    parent_id: str | None,
    device: Device,
) -> str:
    token = _REFRESH_PREFIX + secrets.token_urlsafe(32)
    s.add(
        RefreshToken(
            family_id=family_id,
            parent_id=parent_id,
            token_hash=_hash(token),
            user_id=user_id,
            user_agent=device.user_agent[:300] or None,
            address=truncate_address(device.address),
            expires_at=utcnow() + timedelta(seconds=policy.refresh_seconds),
        )
    )
    s.flush()
    return token


def sign_in_tokens(
    s: Session, policy: TokenPolicy, user: User, device: Device | None = None
) -> TokenPair:
    """An access token and the first refresh token of a new family, for a signed-in user."""
    refresh = _new_refresh(s, policy, user.id, new_id(), None, device or Device())
    return TokenPair(issue_access_token(policy, user), refresh, policy.access_seconds)


def revoke_family(s: Session, family_id: str) -> None:
    s.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )


def revoke_user_tokens(s: Session, user_id: str) -> None:
    """Revoke every refresh token of the user (their apps must sign in again)."""
    s.execute(
        update(RefreshToken)
        .where(RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )


def refresh_tokens(
    s: Session, policy: TokenPolicy, token: str, device: Device | None = None
) -> TokenPair:
    """Rotate: spend ``token`` and return a new pair in the same family.

    :raises RefreshTokenReused: ``token`` was spent before; its family is revoked (commit
        the session: the revocation must stick although this call fails).
    :raises TokenInvalid: unknown, expired, revoked, or the user is disabled.
    """
    invalid = TokenInvalid("The refresh token is not valid; sign in again.")
    if not token.startswith(_REFRESH_PREFIX) or len(token) > 128:
        raise invalid
    row = s.scalars(
        select(RefreshToken).where(RefreshToken.token_hash == _hash(token))
    ).one_or_none()
    if row is None or row.revoked_at is not None or row.expires_at <= utcnow():
        raise invalid
    # Spend it atomically: of two requests racing with one token, only one wins.
    spent = s.execute(
        update(RefreshToken)
        .where(RefreshToken.id == row.id, RefreshToken.used_at.is_(None))
        .values(used_at=utcnow())
    )
    if spent.rowcount != 1:  # type: ignore[attr-defined]
        revoke_family(s, row.family_id)
        raise RefreshTokenReused(
            "This refresh token was used before; every session from that sign-in is now "
            "signed out. Sign in again."
        )
    user = s.get(User, row.user_id)
    if user is None or user.disabled:
        revoke_family(s, row.family_id)
        raise invalid
    fresh = _new_refresh(s, policy, user.id, row.family_id, row.id, device or Device())
    return TokenPair(issue_access_token(policy, user), fresh, policy.access_seconds)
