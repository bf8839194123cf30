"""Tables: users, identities, API keys, refresh tokens, playback signing keys."""

from __future__ import annotations

import enum
import ipaddress
import secrets
from datetime import datetime

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from mediaplane.db import Base, str_enum, utcnow

_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"


def new_id(length: int = 24) -> str:
    """A random lowercase id (URL-safe, case-insensitive-safe)."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def truncate_address(address: str | None) -> str | None:
    """An IP address with its host part dropped (IPv4 /24, IPv6 /48): enough to tell a
    device's network on the profile page, not to find a person. None for what is not an
    address (a test client's ``testclient``, a missing one)."""
    if not address:
        return None
    try:
        ip = ipaddress.ip_address(address.strip()[:64])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    prefix = 24 if ip.version == 4 else 48
    network = ipaddress.ip_network(f"{ip}/{prefix}", strict=False)
    return f"{network.network_address}/{prefix}"


class Role(enum.StrEnum):
    VIEWER = "viewer"
    CREATOR = "creator"
    MODERATOR = "moderator"
    ADMIN = "admin"


class Scope(enum.StrEnum):
    """An API key's scope; each covers the ones before it (``write`` may read)."""

    READ = "read"
    WRITE = "write"
    ADMIN = "admin"

    def covers(self, required: Scope) -> bool:
        order = list(Scope)
        return order.index(self) >= order.index(required)


class KeySource(enum.StrEnum):
    """Where an API key came from: created through the API/CLI, or the configured admin token."""

    CREATED = "created"
    ADMIN_TOKEN = "admin_token"


class User(Base):
    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    #: Stored lower-cased, so the unique index is case-insensitive on every backend.
    email: Mapped[str] = mapped_column(String(254), unique=True)
    email_verified: Mapped[bool] = mapped_column(default=False)
    password_hash: Mapped[str | None] = mapped_column(String(255))
    role: Mapped[Role] = mapped_column(str_enum(Role, 16), default=Role.VIEWER)
    disabled: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Identity(Base):
    """An external (OpenID Connect) identity linked to a user: ``iss`` + ``sub``."""

    __tablename__ = "identities"
    __table_args__ = (UniqueConstraint("iss", "sub", name="uq_identities_iss_sub"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    iss: Mapped[str] = mapped_column(String(500))
    sub: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200), default="")
    #: The key's first characters, shown in lists (never enough to use it).
    prefix: Mapped[str] = mapped_column(String(32))
    #: SHA-256 (hex) of the whole key; keys are 256-bit random, so no salt or stretching.
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scope: Mapped[Scope] = mapped_column(str_enum(Scope, 16))
    source: Mapped[KeySource] = mapped_column(str_enum(KeySource, 16), default=KeySource.CREATED)
    user_id: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()


class RefreshToken(Base):
    """One refresh token; those rotated from one sign-in share a ``family_id``."""

    __tablename__ = "refresh_tokens"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    family_id: Mapped[str] = mapped_column(String(32), index=True)
    parent_id: Mapped[str | None] = mapped_column(String(32))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    #: The app's user agent and truncated address when this token was issued (the profile).
    user_agent: Mapped[str | None] = mapped_column(String(300))
    address: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()
    used_at: Mapped[datetime | None] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()


class SigningKey(Base):
    """A signed-playback key: only the public half is kept."""

    __tablename__ = "signing_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    public_key: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column()
