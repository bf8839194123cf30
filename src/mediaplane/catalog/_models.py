from __future__ import annotations

import enum
import secrets
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Float, ForeignKey, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from mediaplane.accounts import AccessKind, Visibility
from mediaplane.config import SourceType
from mediaplane.db import Base, str_enum, utcnow

_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"


def new_id(length: int = 24) -> str:
    """A random lowercase id (URL-safe, case-insensitive-safe)."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


class AssetStatus(enum.StrEnum):
    PREPARING = "preparing"
    READY = "ready"
    ERRORED = "errored"


class Protection(enum.StrEnum):
    """How an asset's renditions are encrypted: HLS full-segment AES-128, CENC AES-CTR
    (``cenc``) or AES-CBC pattern 1:9 (``cbcs``); ``none``: in the clear."""

    NONE = "none"
    AES_128 = "aes-128"
    CENC = "cenc"
    CBCS = "cbcs"


class PlaybackPolicy(enum.StrEnum):
    PUBLIC = "public"
    SIGNED = "signed"


class ModerationStatus(enum.StrEnum):
    """``pending`` and ``rejected`` assets are refused at public playback."""

    NOT_REQUIRED = "not_required"
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"


class FingerprintStatus(enum.StrEnum):
    """Where an asset's audio fingerprint stands (``asset.fingerprint`` job)."""

    PENDING = "pending"
    READY = "ready"
    NO_AUDIO = "no_audio"  # the source has no audio track
    TOO_SHORT = "too_short"  # too little audio to compare (a few seconds at most)
    FAILED = "failed"


class Asset(Base):
    __tablename__ = "assets"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    status: Mapped[AssetStatus] = mapped_column(
        str_enum(AssetStatus, 16), default=AssetStatus.PREPARING, index=True
    )
    title: Mapped[str] = mapped_column(String(500), default="")
    source_filename: Mapped[str | None] = mapped_column(String(255))
    source_key: Mapped[str | None] = mapped_column(String(1024))
    source_size: Mapped[int | None] = mapped_column(BigInteger)
    input_url: Mapped[str | None] = mapped_column(Text)
    duration: Mapped[float | None] = mapped_column(Float)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    frame_rate: Mapped[str | None] = mapped_column(String(32))
    #: The source's video facts from the probe (display shape, sample aspect, fields, colour
    #: and HDR transfer: ``MediaInfo.video_facts()``); None until probed.
    source_video: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    tracks: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    errors: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    presentation: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    #: Bumped by every presentation write (compare-and-set: several jobs publish renditions).
    presentation_rev: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    ready_at: Mapped[datetime | None]
    #: When the renditions a re-package replaced (unlisted, kept for players already on
    #: them) are deleted; None: none are waiting.
    renditions_retire_at: Mapped[datetime | None] = mapped_column(index=True)
    source_type: Mapped[SourceType] = mapped_column(
        str_enum(SourceType, 32), default=SourceType.CREATOR_UPLOAD
    )
    moderation: Mapped[ModerationStatus] = mapped_column(
        str_enum(ModerationStatus, 16), default=ModerationStatus.NOT_REQUIRED, index=True
    )
    moderated_at: Mapped[datetime | None]
    #: Licensed-content rights in the canonical form of ``Rights.to_json()`` (None: unrestricted).
    rights: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    #: The channel that owns the asset (``accounts.Channel``); None: the install's (assets
    #: from before channels, those admins create, those of a deleted channel).
    channel_id: Mapped[str | None] = mapped_column(
        ForeignKey("channels.id", ondelete="SET NULL"), index=True
    )
    #: Who finds it: listed (public), by link (unlisted), its channel only (private).
    visibility: Mapped[Visibility] = mapped_column(
        str_enum(Visibility, 16), default=Visibility.PUBLIC, server_default="public"
    )
    #: What playing it takes (``accounts.AccessKind``); ``rental_hours``: a rental's window.
    access: Mapped[AccessKind] = mapped_column(
        str_enum(AccessKind, 16), default=AccessKind.FREE, server_default="free"
    )
    rental_hours: Mapped[int | None] = mapped_column(Integer)
    #: The protection policy (a :class:`Protection` value); a change re-packages the asset.
    protection: Mapped[str] = mapped_column(String(16), default="none", server_default="none")
    #: Opaque client string, returned as given (e.g. in webhooks).
    passthrough: Mapped[str | None] = mapped_column(String(255))

    #: sha256 of the source bytes (lowercase hex); equal hashes mean the same file.
    content_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    #: The oldest other asset with the same content hash (set at ingest).
    duplicate_of: Mapped[str | None] = mapped_column(String(32))
    #: Raw chromaprint fingerprint: little-endian 32-bit words, ~8 per second of audio.
    audio_fingerprint: Mapped[bytes | None] = mapped_column(LargeBinary, deferred=True)
    fingerprint_status: Mapped[FingerprintStatus | None] = mapped_column(
        str_enum(FingerprintStatus, 16), index=True
    )
    #: An older asset whose audio matches this one's (see pipeline._fingerprint).
    audio_match_of: Mapped[str | None] = mapped_column(String(32))

    playback_ids: Mapped[list[PlaybackId]] = relationship(
        back_populates="asset", cascade="all, delete-orphan", lazy="selectin"
    )

    @property
    def storage_prefix(self) -> str:
        return f"assets/{self.id}/"


class PlaybackId(Base):
    __tablename__ = "playback_ids"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id(32))
    asset_id: Mapped[str] = mapped_column(ForeignKey("assets.id", ondelete="CASCADE"), index=True)
    policy: Mapped[PlaybackPolicy] = mapped_column(
        str_enum(PlaybackPolicy, 16), default=PlaybackPolicy.PUBLIC
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    asset: Mapped[Asset] = relationship(back_populates="playback_ids")
