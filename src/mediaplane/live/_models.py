"""Tables: live streams (what a publisher's stream key opens), their sessions (one run of a
publisher, reconnects included) and their playback ids."""

from __future__ import annotations

import enum
import hashlib
import secrets
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from mediaplane.catalog import PlaybackPolicy
from mediaplane.db import Base, str_enum, utcnow

_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"


def new_id(length: int = 24) -> str:
    """A random lowercase id (URL-safe, case-insensitive-safe), as assets have."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def new_stream_key() -> str:
    """A fresh stream key: 32 random bytes, URL-safe (43 characters of ``[A-Za-z0-9_-]``),
    fit for an RTMP path, an SRT stream id and a bearer token alike."""
    return secrets.token_urlsafe(32)


def stream_key_hash(stream_key: str) -> str:
    """The SHA-256 of a stream key (lowercase hex): what publishers are looked up by."""
    return hashlib.sha256(stream_key.encode("utf-8", "surrogatepass")).hexdigest()


class LiveStreamStatus(enum.StrEnum):
    """``idle`` → ``active`` (a publisher connected) → ``idle``; ``disabled`` refuses
    publishers until enabled again."""

    IDLE = "idle"
    ACTIVE = "active"
    DISABLED = "disabled"


class LatencyMode(enum.StrEnum):
    """``low``: LL-HLS parts and low-latency DASH; ``standard``: whole segments only."""

    STANDARD = "standard"
    LOW = "low"


class LiveStream(Base):
    __tablename__ = "live_streams"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    #: The channel that owns it (as an asset's); None: the install's.
    channel_id: Mapped[str | None] = mapped_column(
        ForeignKey("channels.id", ondelete="SET NULL"), index=True
    )
    #: Kept readable: the owner reads it back from the API, as hosted live APIs allow.
    stream_key: Mapped[str] = mapped_column(String(64))
    #: SHA-256 of ``stream_key`` (hex): the one lookup a publisher's key gets.
    stream_key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    status: Mapped[LiveStreamStatus] = mapped_column(
        str_enum(LiveStreamStatus, 16), default=LiveStreamStatus.IDLE
    )
    latency_mode: Mapped[LatencyMode] = mapped_column(
        str_enum(LatencyMode, 16), default=LatencyMode.STANDARD
    )
    record: Mapped[bool] = mapped_column(default=False)
    #: Content protection of its publishes: ``none``, ``cenc`` or ``cbcs`` (a change
    #: applies from the next publish on).
    protection: Mapped[str] = mapped_column(String(16), default="none", server_default="none")
    dvr_window_seconds: Mapped[int] = mapped_column(Integer)
    reconnect_window_seconds: Mapped[int] = mapped_column(Integer)
    #: The session now live (or away within its reconnect window); None when idle.
    active_session_id: Mapped[str | None] = mapped_column(String(32))
    #: The asset recording the current session (``record``); None otherwise.
    active_asset_id: Mapped[str | None] = mapped_column(
        ForeignKey("assets.id", ondelete="SET NULL")
    )
    #: Recordings of earlier sessions, oldest first (at most ``MAX_RECENT_ASSETS``).
    recent_asset_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    #: Input health (bitrate, frame rate, keyframe interval, …), written by the ingest.
    health: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    #: When ``health`` was last written (it does not touch ``updated_at``).
    health_updated_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    playback_ids: Mapped[list[LivePlaybackId]] = relationship(
        back_populates="live_stream",
        cascade="all, delete-orphan",
        lazy="selectin",
        order_by="LivePlaybackId.created_at",
    )


class LiveSessionRow(Base):
    """One run of a publisher on a stream; a reconnect within the window continues it."""

    __tablename__ = "live_sessions"
    __table_args__ = (Index("ix_live_sessions_stream_started", "live_stream_id", "started_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    live_stream_id: Mapped[str] = mapped_column(ForeignKey("live_streams.id", ondelete="CASCADE"))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: When the session ended (idle, disabled, deleted); None while it lasts.
    ended_at: Mapped[datetime | None]
    #: When its publisher last went away; None while one is connected.
    disconnected_at: Mapped[datetime | None]
    #: ``rtmp``, ``srt``, ``whip`` (of the latest connection).
    protocol: Mapped[str] = mapped_column(String(16))
    #: The recording asset (``record``), None otherwise.
    asset_id: Mapped[str | None] = mapped_column(ForeignKey("assets.id", ondelete="SET NULL"))


class LivePlaybackId(Base):
    __tablename__ = "live_playback_ids"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id(32))
    live_stream_id: Mapped[str] = mapped_column(
        ForeignKey("live_streams.id", ondelete="CASCADE"), index=True
    )
    policy: Mapped[PlaybackPolicy] = mapped_column(
        str_enum(PlaybackPolicy, 16), default=PlaybackPolicy.PUBLIC
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    live_stream: Mapped[LiveStream] = relationship(back_populates="playback_ids")
