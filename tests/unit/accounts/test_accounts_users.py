"""Local users: argon2id hashes, sign-in without enumeration, disabled users."""

from __future__ import annotations

import time

import pytest
from argon2 import PasswordHasher
from sqlalchemy.orm import Session

from mediaplane.accounts import (
    AuthenticationFailed,
    EmailTaken,
    InvalidAccountInput,
    Role,
    authenticate,
    create_user,
    find_user,
    hash_password,
    set_disabled,
)


def test_hash_is_argon2id_and_salted() -> None:
    a, b = hash_password("correct horse"), hash_password("correct horse")
    assert a.startswith("$argon2id$") and a != b
    assert PasswordHasher().verify(a, "correct horse")


@pytest.mark.parametrize("password", ["short", "x" * 1025])
def test_password_length_is_bounded(password: str) -> None:
    with pytest.raises(InvalidAccountInput) as err:
        hash_password(password)
    assert err.value.code == "invalid_password"


def test_create_stores_a_hash_and_a_lower_cased_address(session: Session) -> None:
    user = create_user(session, "  Ada@Example.ORG ", "correct horse", Role.CREATOR)
    assert user.email == "ada@example.org"
    assert user.role is Role.CREATOR and not user.disabled and not user.email_verified
    assert user.password_hash is not None and "correct horse" not in user.password_hash
    assert find_user(session, "ADA@example.org") is user


def test_email_is_unique_whatever_its_case(session: Session) -> None:
    create_user(session, "bob@example.org", "correct horse")
    with pytest.raises(EmailTaken):
        create_user(session, "BOB@Example.org", "another password")
    # the failed insert left the session usable
    assert find_user(session, "bob@example.org") is not None


@pytest.mark.parametrize("email", ["", "no-at-sign", "a@b", "two@@example.org", "a b@c.d"])
def test_bad_addresses_are_refused(session: Session, email: str) -> None:
    with pytest.raises(InvalidAccountInput) as err:
        create_user(session, email, "correct horse")
    assert err.value.code == "invalid_email"


def test_unknown_role_is_refused(session: Session) -> None:
    with pytest.raises(InvalidAccountInput) as err:
        create_user(session, "r@example.org", "correct horse", "superuser")
    assert err.value.code == "invalid_role"


def test_authenticate(session: Session) -> None:
    user = create_user(session, "carol@example.org", "correct horse")
    assert authenticate(session, "Carol@Example.org", "correct horse") is user


def _failure(session: Session, email: str, password: str) -> tuple[str, float]:
    start = time.perf_counter()
    with pytest.raises(AuthenticationFailed) as err:
        authenticate(session, email, password)
    return err.value.message, time.perf_counter() - start


def test_failures_look_alike(session: Session) -> None:
    """Unknown address, wrong password, no password: one message, each an argon2 verify."""
    create_user(session, "dave@example.org", "correct horse")
    create_user(session, "oidc@example.org", None)
    wrong = _failure(session, "dave@example.org", "wrong horse")
    unknown = _failure(session, "nobody@example.org", "wrong horse")
    no_password = _failure(session, "oidc@example.org", "wrong horse")
    not_an_address = _failure(session, "not an address", "wrong horse")
    assert wrong[0] == unknown[0] == no_password[0] == not_an_address[0]
    # argon2 with 64 MiB takes milliseconds: an unknown user must not answer much faster
    assert unknown[1] > wrong[1] / 4 and no_password[1] > wrong[1] / 4


def test_a_disabled_user_cannot_sign_in(session: Session) -> None:
    user = create_user(session, "eve@example.org", "correct horse")
    set_disabled(session, user.id)
    message, _ = _failure(session, "eve@example.org", "correct horse")
    assert message == _failure(session, "eve@example.org", "wrong horse")[0]
    set_disabled(session, user.id, False)
    assert authenticate(session, "eve@example.org", "correct horse") is user


def test_an_enormous_password_fails_without_hashing(session: Session) -> None:
    create_user(session, "frank@example.org", "correct horse")
    with pytest.raises(AuthenticationFailed):
        authenticate(session, "frank@example.org", "x" * 10_000_000)
