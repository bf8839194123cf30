"""Tables: wrapped key-encryption keys, wrapped content keys, the key-release audit log."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from mediaplane.db import Base, utcnow


class KeyEncryptionKey(Base):
    """A KEK, stored only as the KMS wrapped it; the newest unretired one wraps new keys."""

    __tablename__ = "key_encryption_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kms: Mapped[str] = mapped_column(String(200))  # which KMS key wrapped it (no secret)
    wrapped: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    retired_at: Mapped[datetime | None] = mapped_column()


class ContentKeyRow(Base):
    """A 128-bit content key and its KID; the key only as AES-256-GCM under a KEK (the KID
    is the associated data, so a wrapped key moved onto another KID does not decrypt)."""

    __tablename__ = "content_keys"

    kid: Mapped[str] = mapped_column(String(32), primary_key=True)  # 32 lowercase hex digits
    asset_id: Mapped[str] = mapped_column(String(64), index=True)
    #: What the key covers: "all", or "sd" / "hd" / "audio" (per track type).
    track_type: Mapped[str] = mapped_column(String(16))
    kek_id: Mapped[int] = mapped_column(ForeignKey("key_encryption_keys.id"))
    wrapped: Mapped[bytes] = mapped_column(LargeBinary)
    #: Where the key came from: "generated", or "cpix" / "speke" (a key provider's).
    origin: Mapped[str] = mapped_column(String(16), default="generated")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: Set when a newer key replaced it (rotation); kept for what still references it.
    retired_at: Mapped[datetime | None] = mapped_column()


class DrmSignalRow(Base):
    """A commercial DRM system's signalling for one KID (from a key provider: CPIX import or
    SPEKE): the PSSH box the packager embeds, the data the MPD and HLS tags carry."""

    __tablename__ = "drm_signals"

    kid: Mapped[str] = mapped_column(String(32), primary_key=True)
    system_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    pssh: Mapped[bytes | None] = mapped_column(LargeBinary)
    content_protection_data: Mapped[bytes | None] = mapped_column(LargeBinary)
    hls_media: Mapped[bytes | None] = mapped_column(LargeBinary)
    hls_master: Mapped[bytes | None] = mapped_column(LargeBinary)


class KeyRelease(Base):
    """One decision on handing a key to a viewer: who, which KID, granted or not and why.
    Never the key itself."""

    __tablename__ = "key_releases"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    kid: Mapped[str] = mapped_column(String(32), index=True)
    asset_id: Mapped[str | None] = mapped_column(String(64), index=True)
    playback_id: Mapped[str | None] = mapped_column(String(64))
    #: Who asked: "user:<id>", "viewer:<token viewer id>", or "anonymous".
    principal: Mapped[str] = mapped_column(String(120))
    #: How: "hls-key" (/keys/{kid}) or "clearkey" (/drm/clearkey) or a key provider export.
    channel: Mapped[str] = mapped_column(String(16))
    granted: Mapped[bool] = mapped_column()
    reason: Mapped[str] = mapped_column(String(64))
    address: Mapped[str | None] = mapped_column(String(64))  # truncated (/24, /48)
