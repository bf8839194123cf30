"""Tables: a user's watch history (resume positions), favourites and playlists."""

from __future__ import annotations

import secrets
from datetime import datetime

from sqlalchemy import Float, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from mediaplane.db import Base, utcnow

_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"


def new_id(length: int = 24) -> str:
    """A random lowercase id (URL-safe, case-insensitive-safe)."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def _user_fk() -> Mapped[str]:
    return mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)


def _asset_fk() -> Mapped[str]:
    return mapped_column(ForeignKey("assets.id", ondelete="CASCADE"), primary_key=True)


class WatchEntry(Base):
    """Where a user is in one asset: the last position the player reported."""

    __tablename__ = "watch_history"
    __table_args__ = (Index("ix_watch_history_user_id_updated_at", "user_id", "updated_at"),)

    user_id: Mapped[str] = _user_fk()
    asset_id: Mapped[str] = _asset_fk()
    position_seconds: Mapped[float] = mapped_column(Float)
    #: The length the player saw (or the asset's): what "finished" is measured against.
    duration_seconds: Mapped[float | None] = mapped_column(Float)
    finished: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Favourite(Base):
    __tablename__ = "favourites"
    __table_args__ = (Index("ix_favourites_user_id_created_at", "user_id", "created_at"),)

    user_id: Mapped[str] = _user_fk()
    asset_id: Mapped[str] = _asset_fk()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Playlist(Base):
    """A user's own ordered list of assets (private to them)."""

    __tablename__ = "playlists"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(String(2000), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class PlaylistItem(Base):
    """One asset in a playlist (at most once), at ``position`` (0 first, kept dense)."""

    __tablename__ = "playlist_items"

    playlist_id: Mapped[str] = mapped_column(
        ForeignKey("playlists.id", ondelete="CASCADE"), primary_key=True
    )
    asset_id: Mapped[str] = _asset_fk()
    position: Mapped[int] = mapped_column(Integer)
    added_at: Mapped[datetime] = mapped_column(default=utcnow)
