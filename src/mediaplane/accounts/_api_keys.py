"""API keys for servers: created (shown once), listed by prefix, revoked, scoped, stored hashed.

The configured admin token is adopted as an admin key (:func:`adopt_admin_token`): it is
the first admin key of an install and authorises only while it is the configured token.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mediaplane.db import utcnow

from ._errors import ApiKeyInvalid, InsufficientScope, InvalidAccountInput, NotFound
from ._models import ApiKey, KeySource, Scope, User

KEY_PREFIX = "mpk_"
#: ``last_used_at`` is written at most this often per key (a write per request would not scale).
_TOUCH_EVERY = timedelta(seconds=60)
ADMIN_TOKEN_NAME = "admin token"


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class NewApiKey:
    """A key just created: ``key`` is shown this once and never stored."""

    row: ApiKey
    key: str


def _scope(value: Scope | str) -> Scope:
    try:
        return Scope(value)
    except ValueError:
        raise InvalidAccountInput(
            f"Unknown scope {value!r}; use one of {', '.join(Scope)}.", "invalid_scope"
        ) from None


def create_api_key(
    s: Session, scope: Scope | str, name: str = "", user_id: str | None = None
) -> NewApiKey:
    """A new key ``mpk_<id>_<secret>``; only its hash and prefix are stored."""
    scope = _scope(scope)
    if len(name) > 200:
        raise InvalidAccountInput("A key's name has at most 200 characters.", "invalid_name")
    if user_id is not None and s.get(User, user_id) is None:
        raise InvalidAccountInput(f"No user with id {user_id!r}.", "invalid_user")
    public = secrets.token_hex(4)
    key = f"{KEY_PREFIX}{public}_{secrets.token_urlsafe(32)}"
    row = ApiKey(
        name=name, prefix=KEY_PREFIX + public, key_hash=key_hash(key), scope=scope, user_id=user_id
    )
    s.add(row)
    s.flush()
    return NewApiKey(row, key)


def list_api_keys(s: Session, *, include_revoked: bool = False) -> list[ApiKey]:
    q = select(ApiKey).order_by(ApiKey.created_at, ApiKey.id)
    if not include_revoked:
        q = q.where(ApiKey.revoked_at.is_(None))
    return list(s.scalars(q))


def revoke_api_key(s: Session, key_id: str) -> ApiKey:
    """Revoke a key at once (revoking twice is fine); unknown id: :class:`NotFound`."""
    row = s.get(ApiKey, key_id)
    if row is None:
        raise NotFound(f"No API key with id {key_id!r}.")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
    return row


def adopt_admin_token(s: Session, token: str) -> ApiKey:
    """The configured admin token's key row, created on first start. A previous admin token
    (the configuration changed) is revoked: only the configured one works, as before."""
    digest = key_hash(token)
    row = s.scalars(select(ApiKey).where(ApiKey.key_hash == digest)).one_or_none()
    if row is None:
        row = ApiKey(
            name=ADMIN_TOKEN_NAME,
            prefix="admin-token",
            key_hash=digest,
            scope=Scope.ADMIN,
            source=KeySource.ADMIN_TOKEN,
        )
        try:
            with s.begin_nested():  # another web process may adopt it at the same moment
                s.add(row)
        except IntegrityError:
            row = s.scalars(select(ApiKey).where(ApiKey.key_hash == digest)).one()
    s.execute(
        update(ApiKey)
        .where(
            ApiKey.source == KeySource.ADMIN_TOKEN,
            ApiKey.key_hash != digest,
            ApiKey.revoked_at.is_(None),
        )
        .values(revoked_at=utcnow())
    )
    return row


def verify_api_key(
    s: Session, key: str, required: Scope | str, *, admin_token: str | None = None
) -> ApiKey:
    """The key row if ``key`` is a live key whose scope covers ``required``.

    :param admin_token: the configured admin token; a request bearing it is adopted (first
        use on an install) and authorises as an admin key; an earlier admin token does not.
    :raises ApiKeyInvalid: unknown, revoked, owner disabled, or a retired admin token.
    :raises InsufficientScope: valid, but its scope is narrower than ``required``.
    """
    required = _scope(required)
    is_admin_token = admin_token is not None and hmac.compare_digest(
        key.encode(), admin_token.encode()
    )
    row = s.scalars(select(ApiKey).where(ApiKey.key_hash == key_hash(key))).one_or_none()
    if row is None and is_admin_token:
        row = adopt_admin_token(s, key)
    if row is None or row.revoked_at is not None:
        raise ApiKeyInvalid("The API token is not valid.")
    if row.source == KeySource.ADMIN_TOKEN and not is_admin_token:
        raise ApiKeyInvalid("The API token is not valid.")
    if row.user_id is not None:
        owner = s.get(User, row.user_id)
        if owner is None or owner.disabled:
            raise ApiKeyInvalid("The API token is not valid.")
    if not row.scope.covers(required):
        raise InsufficientScope(f"This API key's scope is {row.scope}; this needs {required}.")
    now = utcnow()
    if row.last_used_at is None or now - row.last_used_at > _TOUCH_EVERY:
        row.last_used_at = now
    return row
