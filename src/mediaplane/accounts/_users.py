"""Local users: creation with an argon2id password hash, and sign-in."""

from __future__ import annotations

import re
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ._errors import AuthenticationFailed, EmailTaken, InvalidAccountInput, NotFound
from ._models import Role, User

#: argon2id with argon2-cffi's defaults (RFC 9106 "low memory": t=3, m=64 MiB, p=4).
_hasher = PasswordHasher()
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MIN_PASSWORD = 8
#: Hashing is deliberately slow; an enormous password must not make it slower.
MAX_PASSWORD = 1024


def normalise_email(email: str) -> str:
    """The stored form of an address: trimmed and lower-cased; raises if it is not one."""
    value = email.strip().lower()
    if len(value) > 254 or not _EMAIL.match(value):
        raise InvalidAccountInput("That is not an e-mail address.", "invalid_email")
    return value


def _check_password(password: str) -> None:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise InvalidAccountInput(
            f"A password needs {MIN_PASSWORD} to {MAX_PASSWORD} characters.", "invalid_password"
        )


def hash_password(password: str) -> str:
    """An argon2id hash of ``password`` (the PHC string, salt and parameters included)."""
    _check_password(password)
    return _hasher.hash(password)


@cache
def _dummy_hash() -> str:
    # Verified against when no such user exists, so that case costs as much as a wrong password.
    return _hasher.hash("not-a-password-anyone-has")


def create_user(
    s: Session,
    email: str,
    password: str | None,
    role: Role | str = Role.VIEWER,
    *,
    email_verified: bool = False,
) -> User:
    """Create a user (``password`` None: one who signs in through OpenID Connect only)."""
    try:
        role = Role(role)
    except ValueError:
        raise InvalidAccountInput(
            f"Unknown role {role!r}; use one of {', '.join(Role)}.", "invalid_role"
        ) from None
    user = User(
        email=normalise_email(email),
        password_hash=hash_password(password) if password is not None else None,
        role=role,
        email_verified=email_verified,
    )
    try:
        with s.begin_nested():
            s.add(user)
    except IntegrityError:
        raise EmailTaken("An account with this e-mail address exists already.") from None
    return user


def get_user(s: Session, user_id: str) -> User:
    user = s.get(User, user_id)
    if user is None:
        raise NotFound(f"No user with id {user_id!r}.")
    return user


def find_user(s: Session, email: str) -> User | None:
    """The user with this address (any case), or None."""
    try:
        key = normalise_email(email)
    except InvalidAccountInput:
        return None
    return s.scalars(select(User).where(User.email == key)).one_or_none()


def set_disabled(s: Session, user_id: str, disabled: bool = True) -> User:
    """Disable (or re-enable) a user; a disabled user's keys and tokens stop working."""
    user = get_user(s, user_id)
    user.disabled = disabled
    return user


def set_role(s: Session, user_id: str, role: Role | str) -> User:
    """Change a user's role; it takes effect on their next request (every credential reads
    the user row)."""
    try:
        role = Role(role)
    except ValueError:
        raise InvalidAccountInput(
            f"Unknown role {role!r}; use one of {', '.join(Role)}.", "invalid_role"
        ) from None
    user = get_user(s, user_id)
    user.role = role
    return user


def list_users(
    s: Session, *, email_contains: str = "", limit: int = 50, page: int = 1
) -> tuple[list[User], int]:
    """A page of users by e-mail address (those whose address contains ``email_contains``,
    case-insensitively), and how many match in all."""
    query = select(User)
    needle = email_contains.strip().lower()[:254]
    if needle:
        escaped = needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(User.email.like(f"%{escaped}%", escape="\\"))
    total = s.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = s.scalars(query.order_by(User.email).limit(limit).offset((page - 1) * limit))
    return list(rows), total


def authenticate(s: Session, email: str, password: str) -> User:
    """The user these credentials sign in, or :class:`AuthenticationFailed`.

    Unknown address, wrong password, no password and disabled account fail alike and take
    about as long (an argon2 verification each), so an answer says nothing about who exists.
    """
    user = find_user(s, email)
    stored = user.password_hash if user is not None and user.password_hash else _dummy_hash()
    try:
        ok = len(password) <= MAX_PASSWORD and _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        ok = False
    if not ok or user is None or user.password_hash is None or user.disabled:
        raise AuthenticationFailed("The e-mail address or password is not right.")
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    return user
