"""Which user an OpenID Connect sign-in reaches: by iss + sub, by a vouched-for e-mail, or a
new one; an unverified address reaches no account and makes none (SQLite and PostgreSQL)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.orm import Session

from mediaplane.accounts import (
    AuthenticationFailed,
    Identity,
    OidcError,
    User,
    create_user,
    link_user,
    set_disabled,
)
from mediaplane.config import OidcProvider

ISS = "https://idp.example.com"


def _provider(**kw: Any) -> OidcProvider:
    return OidcProvider(
        name="idp",
        discovery_url=f"{ISS}/.well-known/openid-configuration",
        client_id="c",
        client_secret=SecretStr("s"),
        **kw,
    )


def _email() -> str:
    return f"u-{uuid.uuid4().hex[:10]}@example.com"


def _claims(email: str | None, verified: object = True, sub: str | None = None) -> dict[str, Any]:
    claims: dict[str, Any] = {"iss": ISS, "sub": sub or uuid.uuid4().hex}
    if email is not None:
        claims["email"] = email
    if verified is not None:
        claims["email_verified"] = verified
    return claims


def _identities(s: Session, sub: str) -> list[Identity]:
    return list(s.scalars(select(Identity).where(Identity.sub == sub)))


def test_a_new_sub_with_a_verified_address_creates_a_user(session: Session) -> None:
    email = _email()
    claims = _claims(email.upper())
    user = link_user(session, _provider(), claims)
    assert user.email == email and user.email_verified and user.password_hash is None
    assert [i.user_id for i in _identities(session, claims["sub"])] == [user.id]


def test_a_known_sub_finds_its_user_whatever_the_address(session: Session) -> None:
    claims = _claims(_email())
    first = link_user(session, _provider(), claims)
    again = link_user(session, _provider(), claims | {"email": _email(), "email_verified": False})
    assert again.id == first.id and len(_identities(session, claims["sub"])) == 1


def test_the_same_sub_at_another_issuer_is_another_identity(session: Session) -> None:
    claims = _claims(_email())
    first = link_user(session, _provider(), claims)
    other = link_user(session, _provider(), claims | {"iss": "https://other.example.com"})
    assert other.id == first.id  # same verified address: linked, but as a second identity
    assert len(_identities(session, claims["sub"])) == 2


def test_a_verified_address_links_to_the_local_account(session: Session) -> None:
    local = create_user(session, _email(), "a-password-1", email_verified=True)
    user = link_user(session, _provider(), _claims(local.email))
    assert user.id == local.id and user.email_verified


def test_a_verified_address_never_links_to_an_unverified_account(session: Session) -> None:
    # That account's maker never proved the address: it may be a squatter waiting for the
    # owner's first sign-in.
    local = create_user(session, _email(), "a-password-1")
    claims = _claims(local.email)
    with pytest.raises(OidcError) as caught:
        link_user(session, _provider(), claims)
    assert caught.value.code == "oidc_account_unverified" and caught.value.status == 409
    assert _identities(session, claims["sub"]) == []


@pytest.mark.parametrize("verified", [False, None, "true", 1])
def test_an_unverified_address_never_links(session: Session, verified: object) -> None:
    local = create_user(session, _email(), "a-password-1", email_verified=True)
    claims = _claims(local.email, verified)
    with pytest.raises(OidcError) as caught:
        link_user(session, _provider(), claims)
    assert caught.value.code == "oidc_email_unverified" and caught.value.status == 403
    assert _identities(session, claims["sub"]) == []


def test_an_unverified_new_address_makes_no_user(session: Session) -> None:
    # It would squat the address, and keep its maker's identity when the owner takes it over.
    email = _email()
    with pytest.raises(OidcError) as caught:
        link_user(session, _provider(), _claims(email, False))
    assert caught.value.code == "oidc_email_unverified"
    assert session.scalars(select(User).where(User.email == email)).all() == []


def test_a_trusted_provider_vouches_for_its_addresses(session: Session) -> None:
    local = create_user(session, _email(), "a-password-1", email_verified=True)
    user = link_user(session, _provider(trust_email=True), _claims(local.email, None))
    assert user.id == local.id


@pytest.mark.parametrize("email", [None, "", "not-an-address", 42])
def test_no_usable_address_is_a_clear_error(session: Session, email: object) -> None:
    claims = _claims(None) | ({} if email is None else {"email": email})
    with pytest.raises(OidcError) as caught:
        link_user(session, _provider(), claims)
    assert caught.value.code == "oidc_no_email"


def test_a_disabled_user_does_not_sign_in(session: Session) -> None:
    claims = _claims(_email())
    user = link_user(session, _provider(), claims)
    set_disabled(session, user.id)
    with pytest.raises(AuthenticationFailed):
        link_user(session, _provider(), claims)
    users = session.scalars(select(User).where(User.email == claims["email"])).all()
    assert len(users) == 1
