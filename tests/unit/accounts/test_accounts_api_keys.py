"""API keys: shown once, stored hashed, listed by prefix, scoped, revoked; the admin token."""

from __future__ import annotations

import hashlib

import pytest
from sqlalchemy.orm import Session

from mediaplane.accounts import (
    ApiKey,
    ApiKeyInvalid,
    InsufficientScope,
    InvalidAccountInput,
    KeySource,
    Scope,
    adopt_admin_token,
    create_api_key,
    create_user,
    list_api_keys,
    revoke_api_key,
    set_disabled,
    verify_api_key,
)


def test_a_key_is_stored_hashed_and_listed_by_prefix(session: Session) -> None:
    new = create_api_key(session, "write", "ci")
    assert new.key.startswith(new.row.prefix + "_")
    assert new.row.key_hash == hashlib.sha256(new.key.encode()).hexdigest()
    stored = {c: getattr(new.row, c) for c in ("prefix", "key_hash", "name")}
    secret = new.key.removeprefix(new.row.prefix + "_")  # may itself hold "_" (urlsafe)
    assert all(new.key != v and secret not in v for v in stored.values())
    listed = [k for k in list_api_keys(session) if k.id == new.row.id]
    assert listed[0].prefix == new.row.prefix and listed[0].scope is Scope.WRITE


@pytest.mark.parametrize(
    ("scope", "allowed"),
    [
        ("read", {"read"}),
        ("write", {"read", "write"}),
        ("admin", {"read", "write", "admin"}),
    ],
)
def test_scopes_cover_the_ones_below(session: Session, scope: str, allowed: set[str]) -> None:
    key = create_api_key(session, scope).key
    for required in Scope:
        if required in allowed:
            assert verify_api_key(session, key, required).scope == scope
        else:
            with pytest.raises(InsufficientScope):
                verify_api_key(session, key, required)


def test_verify_records_last_use(session: Session) -> None:
    new = create_api_key(session, "read")
    assert new.row.last_used_at is None
    assert verify_api_key(session, new.key, "read").last_used_at is not None


def test_a_revoked_key_stops_at_once(session: Session) -> None:
    new = create_api_key(session, "admin")
    revoke_api_key(session, new.row.id)
    revoke_api_key(session, new.row.id)  # twice is fine
    with pytest.raises(ApiKeyInvalid):
        verify_api_key(session, new.key, "read")
    assert new.row.id not in {k.id for k in list_api_keys(session)}
    assert new.row.id in {k.id for k in list_api_keys(session, include_revoked=True)}


@pytest.mark.parametrize(
    "key", ["", "mpk_nope", "mpk_0000_" + "a" * 43, "x" * 600, "'; DROP TABLE api_keys; --"]
)
def test_made_up_keys_are_invalid(session: Session, key: str) -> None:
    with pytest.raises(ApiKeyInvalid):
        verify_api_key(session, key, "read")


def test_a_disabled_owner_s_keys_stop_working(session: Session) -> None:
    user = create_user(session, "keys-owner@example.org", "correct horse", "creator")
    new = create_api_key(session, "write", user_id=user.id)
    assert verify_api_key(session, new.key, "write")
    set_disabled(session, user.id)
    with pytest.raises(ApiKeyInvalid):
        verify_api_key(session, new.key, "read")


def test_bad_input(session: Session) -> None:
    with pytest.raises(InvalidAccountInput):
        create_api_key(session, "root")
    with pytest.raises(InvalidAccountInput):
        create_api_key(session, "read", user_id="no-such-user")
    with pytest.raises(InvalidAccountInput):
        create_api_key(session, "read", name="n" * 201)


def _admin_rows(session: Session) -> list[ApiKey]:
    rows = list_api_keys(session, include_revoked=True)
    return [r for r in rows if r.source is KeySource.ADMIN_TOKEN]


def test_the_admin_token_is_the_first_admin_key(session: Session) -> None:
    token = "mp_first-admin-token-of-this-install"
    # first use adopts it: it authorises as an admin key, and is listed
    row = verify_api_key(session, token, "admin", admin_token=token)
    assert row.scope is Scope.ADMIN and row.source is KeySource.ADMIN_TOKEN
    assert adopt_admin_token(session, token).id == row.id  # once only
    assert row.prefix == "admin-token" and token not in row.prefix
    # a configured admin token that is not the one in use: the old one stops, as before
    verify_api_key(session, "mp_rotated-admin-token", "admin", admin_token="mp_rotated-admin-token")
    with pytest.raises(ApiKeyInvalid):
        verify_api_key(session, token, "admin", admin_token="mp_rotated-admin-token")
    live = [r for r in _admin_rows(session) if r.revoked_at is None]
    assert len(live) == 1
    # revoking the adopted admin token through the key API makes it stop too
    revoke_api_key(session, live[0].id)
    with pytest.raises(ApiKeyInvalid):
        verify_api_key(
            session, "mp_rotated-admin-token", "read", admin_token="mp_rotated-admin-token"
        )


def test_an_admin_token_row_needs_the_configured_token(session: Session) -> None:
    token = "mp_token-known-only-to-the-server"
    adopt_admin_token(session, token)
    with pytest.raises(ApiKeyInvalid):  # a caller that does not pass the configured token
        verify_api_key(session, token, "admin")
