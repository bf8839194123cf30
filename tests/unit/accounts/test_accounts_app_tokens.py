"""Access tokens (HS256 JWT) and rotating refresh tokens whose reuse revokes the family."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from mediaplane.accounts import (
    RefreshToken,
    RefreshTokenReused,
    Role,
    TokenInvalid,
    TokenPolicy,
    User,
    create_user,
    refresh_tokens,
    set_disabled,
    sign_in_tokens,
    verify_access_token,
)

POLICY = TokenPolicy("s" * 48, access_seconds=60, refresh_seconds=3600)


def _user(session: Session, name: str) -> User:
    return create_user(session, f"{name}@example.org", "correct horse", Role.CREATOR)


def test_access_token_round_trip(session: Session) -> None:
    user = _user(session, "tok-a")
    pair = sign_in_tokens(session, POLICY, user)
    claims = verify_access_token(POLICY, pair.access_token)
    assert claims.user_id == user.id and claims.role is Role.CREATOR
    assert pair.expires_in == 60
    assert timedelta(0) < claims.expires_at - datetime.now(UTC) <= timedelta(seconds=60)


def _forge(claims: dict[str, object], key: str = POLICY.secret, alg: str = "HS256") -> str:
    return jwt.encode(claims, key, algorithm=alg)


def test_hostile_access_tokens_are_refused(session: Session) -> None:
    user = _user(session, "tok-b")
    now = datetime.now(UTC)
    good = {"iss": "mediaplane", "aud": "mediaplane-api", "sub": user.id, "role": "admin"}
    hostile = [
        "",
        "not.a.jwt",
        _forge({**good, "exp": now + timedelta(minutes=1)}, key="another secret" * 4),
        _forge({**good, "exp": now - timedelta(seconds=1)}),
        _forge({**good, "aud": "elsewhere", "exp": now + timedelta(minutes=1)}),
        _forge({**good, "iss": "elsewhere", "exp": now + timedelta(minutes=1)}),
        _forge(good),  # no exp
        _forge({**good, "exp": now + timedelta(minutes=1)}, key="", alg="none"),
        _forge({**good, "role": "god", "exp": now + timedelta(minutes=1)}),
    ]
    for token in hostile:
        with pytest.raises(TokenInvalid):
            verify_access_token(POLICY, token)


def test_refresh_rotates_and_a_spent_token_revokes_the_family(session: Session) -> None:
    user = _user(session, "tok-c")
    first = sign_in_tokens(session, POLICY, user)
    second = refresh_tokens(session, POLICY, first.refresh_token)
    third = refresh_tokens(session, POLICY, second.refresh_token)
    assert len({first.refresh_token, second.refresh_token, third.refresh_token}) == 3
    assert verify_access_token(POLICY, third.access_token).user_id == user.id
    other_sign_in = sign_in_tokens(session, POLICY, user)  # another device: another family

    with pytest.raises(RefreshTokenReused):  # a thief replays the first token
        refresh_tokens(session, POLICY, first.refresh_token)
    with pytest.raises(TokenInvalid):  # and the legitimate holder's newest is dead too
        refresh_tokens(session, POLICY, third.refresh_token)
    rows = session.scalars(select(RefreshToken).where(RefreshToken.user_id == user.id)).all()
    family = {r.family_id for r in rows if r.parent_id is not None}
    assert len(family) == 1
    assert all(r.revoked_at is not None for r in rows if r.family_id in family)
    assert [r.parent_id for r in rows if r.family_id in family].count(None) == 1
    # the other family is untouched
    assert refresh_tokens(session, POLICY, other_sign_in.refresh_token)


def test_expired_unknown_and_malformed_refresh_tokens(session: Session) -> None:
    user = _user(session, "tok-d")
    short = TokenPolicy(POLICY.secret, refresh_seconds=1)
    pair = sign_in_tokens(session, short, user)
    row = session.scalars(select(RefreshToken).where(RefreshToken.user_id == user.id)).one()
    row.expires_at = datetime.now(UTC) - timedelta(seconds=1)
    for token in (pair.refresh_token, "mprt_unknown", "x" * 5000, "", pair.access_token):
        with pytest.raises(TokenInvalid) as err:
            refresh_tokens(session, POLICY, token)
        assert not isinstance(err.value, RefreshTokenReused)


def test_a_disabled_user_cannot_refresh(session: Session) -> None:
    user = _user(session, "tok-e")
    pair = sign_in_tokens(session, POLICY, user)
    set_disabled(session, user.id)
    with pytest.raises(TokenInvalid):
        refresh_tokens(session, POLICY, pair.refresh_token)
    set_disabled(session, user.id, False)
    with pytest.raises(TokenInvalid):  # the family went with the attempt
        refresh_tokens(session, POLICY, pair.refresh_token)
