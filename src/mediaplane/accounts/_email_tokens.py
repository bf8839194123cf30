"""Single-use tokens sent by e-mail: verify an address, reset a password.

Only a SHA-256 of each token is stored; a token works once, before it expires, for the
purpose it was made for, and only while its user is enabled.
"""

from __future__ import annotations

import enum
import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import ForeignKey, String, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from mediaplane.db import Base, str_enum, utcnow

from ._errors import TokenInvalid
from ._models import User, new_id
from ._users import hash_password

#: Longest token we hash (ours are 43 characters).
MAX_TOKEN = 128


class EmailPurpose(enum.StrEnum):
    VERIFY = "verify"
    RESET = "reset"


class EmailToken(Base):
    __tablename__ = "email_tokens"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    purpose: Mapped[EmailPurpose] = mapped_column(str_enum(EmailPurpose, 16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()
    used_at: Mapped[datetime | None] = mapped_column()


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_email_token(s: Session, user: User, purpose: EmailPurpose, seconds: int) -> str:
    """A new token for ``user`` and ``purpose``, good for ``seconds``; returns it (only its
    hash is kept)."""
    token = secrets.token_urlsafe(32)
    s.add(
        EmailToken(
            token_hash=_digest(token),
            user_id=user.id,
            purpose=purpose,
            expires_at=utcnow() + timedelta(seconds=seconds),
        )
    )
    s.flush()
    return token


def _spend(s: Session, token: str, purpose: EmailPurpose) -> User:
    """Mark the token used and return its user, or raise :class:`TokenInvalid` (unknown,
    used, expired, other purpose, disabled user)."""
    bad = TokenInvalid("This link is not valid any more; ask for a new one.")
    if not token or len(token) > MAX_TOKEN:
        raise bad
    now = utcnow()
    # One UPDATE decides: of two requests racing with one token, only one spends it.
    spent = s.execute(
        update(EmailToken)
        .where(
            EmailToken.token_hash == _digest(token),
            EmailToken.purpose == purpose,
            EmailToken.used_at.is_(None),
            EmailToken.expires_at > now,
        )
        .values(used_at=now)
        .returning(EmailToken.user_id)
    ).scalar_one_or_none()
    user = s.get(User, spent) if spent is not None else None
    if user is None or user.disabled:
        raise bad
    return user


def peek_email_token(s: Session, token: str, purpose: EmailPurpose) -> bool:
    """Whether ``token`` would be accepted now (the reset page asks before showing its form)."""
    if not token or len(token) > MAX_TOKEN:
        return False
    row = s.scalars(
        select(EmailToken).where(
            EmailToken.token_hash == _digest(token), EmailToken.purpose == purpose
        )
    ).one_or_none()
    return row is not None and row.used_at is None and row.expires_at > utcnow()


def verify_email(s: Session, token: str) -> User:
    """Spend a verification token: its user's address counts as verified."""
    user = _spend(s, token, EmailPurpose.VERIFY)
    user.email_verified = True
    return user


def reset_password(s: Session, token: str, password: str) -> User:
    """Spend a reset token and set ``password``; the user's other reset links stop working.
    Raises :class:`InvalidAccountInput` for a password we cannot take (the token is kept)."""
    new_hash = hash_password(password)  # checked before the token is spent
    user = _spend(s, token, EmailPurpose.RESET)
    user.password_hash = new_hash
    # Reading the reset mail proves the address as well as verifying it would.
    user.email_verified = True
    s.execute(
        update(EmailToken)
        .where(
            EmailToken.user_id == user.id,
            EmailToken.purpose == EmailPurpose.RESET,
            EmailToken.used_at.is_(None),
        )
        .values(used_at=utcnow())
    )
    return user
