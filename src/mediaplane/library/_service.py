"""The viewer's library: watch progress (resume positions, "continue watching"),
favourites and playlists. Every function takes the caller's :class:`Principal`; what they
may record or list is what the catalog lets them see (:func:`mediaplane.catalog.watchable_by`):
an asset they cannot see is a 404 (:class:`mediaplane.catalog.AssetNotFound`), and entries
of assets they can no longer see are left out of lists.

A principal without a user (the install's admin token, a key of its servers) has no library:
403 ``not_a_user``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError

from mediaplane.catalog import Asset, AssetAction, authorized_asset, watchable_by
from mediaplane.db import utcnow
from mediaplane.errors import Forbidden

from ._errors import InvalidLibraryInput, LibraryFull, PlaylistNotFound
from ._models import Favourite, Playlist, PlaylistItem, WatchEntry

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from mediaplane.accounts import Principal

#: A position or duration past this (seven days) is no video's.
MAX_SECONDS = 7 * 86400.0
#: Watched this share of the length: finished (it leaves "continue watching", resumes at 0).
FINISHED_SHARE = 0.95
#: A player may report a position a little past the length it was told.
END_SLACK_SECONDS = 5.0
MAX_PLAYLISTS = 200
MAX_PLAYLIST_ITEMS = 1000
MAX_NAME = 200
MAX_DESCRIPTION = 2000
_MAX_ID = 64


def user_of(principal: Principal) -> str:
    """The caller's user id; 403 ``not_a_user`` for the install's own credentials."""
    if principal.user_id is None:
        raise Forbidden(
            "This credential acts for the install, not a user: a library belongs to a user. "
            "Sign in, or use a user's token or API key.",
            "not_a_user",
        )
    return principal.user_id


def _visible_asset(s: Session, principal: Principal, asset_id: str) -> Asset:
    return authorized_asset(s, principal, asset_id[:_MAX_ID], AssetAction.WATCH)


# --- watch progress -------------------------------------------------------------------------


def _seconds(value: float, name: str) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise InvalidLibraryInput(f"{name} must be a finite number of seconds.")
    if value < 0 or value > MAX_SECONDS:
        raise InvalidLibraryInput(f"{name} must be between 0 and {MAX_SECONDS:.0f} seconds.")
    return float(value)


def _length(asset: Asset, duration: float | None) -> float | None:
    if duration is not None and _seconds(duration, "duration") > 0:
        return duration
    return asset.duration or None


def record_progress(
    s: Session,
    principal: Principal,
    asset_id: str,
    position: float,
    duration: float | None = None,
) -> WatchEntry:
    """Record where the caller is in an asset (what a player reports every few seconds).

    :param position: seconds from the start.
    :param duration: the length the player sees (seconds); the asset's when None.
    :raises InvalidLibraryInput: not a finite number, negative, past the end.
    """
    user = user_of(principal)
    position = _seconds(position, "position_seconds")
    asset = _visible_asset(s, principal, asset_id)
    length = _length(asset, duration)
    if length is not None:
        if position > length + END_SLACK_SECONDS:
            raise InvalidLibraryInput(
                f"position_seconds ({position:.1f}) is past the end ({length:.1f} s)."
            )
        position = min(position, length)
    finished = length is not None and position >= FINISHED_SHARE * length
    entry = s.get(WatchEntry, (user, asset.id))
    if entry is None:
        try:
            with s.begin_nested():  # a second tab may insert the same row at the same time
                entry = WatchEntry(user_id=user, asset_id=asset.id, position_seconds=position)
                s.add(entry)
        except IntegrityError:
            entry = s.get(WatchEntry, (user, asset.id))
            assert entry is not None
    entry.position_seconds = position
    entry.duration_seconds = length
    entry.finished = finished
    entry.updated_at = utcnow()
    s.flush()
    return entry


def resume_position(entry: WatchEntry) -> float:
    """Where a player should start: the last position, or 0 once finished."""
    return 0.0 if entry.finished else entry.position_seconds


def history(
    s: Session,
    principal: Principal,
    *,
    limit: int = 25,
    page: int = 1,
    continue_watching: bool = False,
) -> tuple[list[tuple[WatchEntry, Asset]], int]:
    """The caller's watch history, most recent first, and how many entries there are;
    ``continue_watching``: only those started and not finished."""
    user = user_of(principal)
    query = (
        select(WatchEntry, Asset)
        .join(Asset, Asset.id == WatchEntry.asset_id)
        .where(WatchEntry.user_id == user, watchable_by(principal))
    )
    if continue_watching:
        query = query.where(WatchEntry.finished.is_(False), WatchEntry.position_seconds > 0)
    total = s.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = s.execute(
        query.order_by(WatchEntry.updated_at.desc(), WatchEntry.asset_id)
        .limit(limit)
        .offset((page - 1) * limit)
    ).all()
    return [(e, a) for e, a in rows], total


def progress_of(s: Session, principal: Principal, asset_id: str) -> WatchEntry | None:
    """The caller's entry for one asset they may see (None: never watched)."""
    user = user_of(principal)
    asset = _visible_asset(s, principal, asset_id)
    return s.get(WatchEntry, (user, asset.id))


def _own_or_visible(s: Session, principal: Principal, model: type, asset_id: str) -> None:
    """Nothing when the caller has a ``model`` row for the asset (removing one's own entry
    needs no visibility) or may see the asset; 404 otherwise."""
    user = user_of(principal)
    if s.get(model, (user, asset_id[:_MAX_ID])) is None:
        _visible_asset(s, principal, asset_id)


def forget(s: Session, principal: Principal, asset_id: str) -> None:
    """Remove one asset from the caller's history (nothing if it was not there)."""
    _own_or_visible(s, principal, WatchEntry, asset_id)
    s.execute(
        delete(WatchEntry).where(
            WatchEntry.user_id == user_of(principal), WatchEntry.asset_id == asset_id
        )
    )


def forget_all(s: Session, principal: Principal) -> int:
    """Clear the caller's history; returns how many entries went."""
    result = s.execute(delete(WatchEntry).where(WatchEntry.user_id == user_of(principal)))
    return int(getattr(result, "rowcount", 0) or 0)


# --- favourites -----------------------------------------------------------------------------


def add_favourite(s: Session, principal: Principal, asset_id: str) -> bool:
    """Mark an asset the caller may see as a favourite; False when it already was."""
    user = user_of(principal)
    asset = _visible_asset(s, principal, asset_id)
    if s.get(Favourite, (user, asset.id)) is not None:
        return False
    try:
        with s.begin_nested():
            s.add(Favourite(user_id=user, asset_id=asset.id))
    except IntegrityError:  # the same request twice at once: it is a favourite either way
        return False
    return True


def remove_favourite(s: Session, principal: Principal, asset_id: str) -> None:
    """Unmark a favourite (nothing if it was not one)."""
    _own_or_visible(s, principal, Favourite, asset_id)
    s.execute(
        delete(Favourite).where(
            Favourite.user_id == user_of(principal), Favourite.asset_id == asset_id
        )
    )


def favourites(
    s: Session, principal: Principal, *, limit: int = 25, page: int = 1
) -> tuple[list[tuple[Favourite, Asset]], int]:
    """The caller's favourites they may still see, newest first, and how many in all."""
    query = (
        select(Favourite, Asset)
        .join(Asset, Asset.id == Favourite.asset_id)
        .where(Favourite.user_id == user_of(principal), watchable_by(principal))
    )
    total = s.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = s.execute(
        query.order_by(Favourite.created_at.desc(), Favourite.asset_id)
        .limit(limit)
        .offset((page - 1) * limit)
    ).all()
    return [(f, a) for f, a in rows], total


def is_favourite(s: Session, principal: Principal, asset_id: str) -> bool:
    return s.get(Favourite, (user_of(principal), asset_id[:_MAX_ID])) is not None


# --- playlists ------------------------------------------------------------------------------


def _text(value: str, name: str, limit: int, *, required: bool) -> str:
    value = value.strip()
    if required and not value:
        raise InvalidLibraryInput(f"{name} must not be empty.")
    if len(value) > limit or any(ord(c) < 32 and c not in "\n\t" for c in value):
        raise InvalidLibraryInput(f"{name}: at most {limit} characters, no control characters.")
    return value


def create_playlist(s: Session, principal: Principal, name: str, description: str = "") -> Playlist:
    """A new empty playlist of the caller's."""
    user = user_of(principal)
    name = _text(name, "name", MAX_NAME, required=True)
    description = _text(description, "description", MAX_DESCRIPTION, required=False)
    count = s.scalar(select(func.count()).select_from(Playlist).where(Playlist.user_id == user))
    if (count or 0) >= MAX_PLAYLISTS:
        raise LibraryFull(f"You have {MAX_PLAYLISTS} playlists already; delete one first.")
    playlist = Playlist(user_id=user, name=name, description=description)
    s.add(playlist)
    s.flush()
    return playlist


def get_playlist(s: Session, principal: Principal, playlist_id: str) -> Playlist:
    """The caller's playlist; :class:`PlaylistNotFound` for any other (another user's too)."""
    user = user_of(principal)
    playlist = s.get(Playlist, playlist_id[:_MAX_ID])
    if playlist is None or playlist.user_id != user:
        raise PlaylistNotFound("No such playlist.")
    return playlist


@dataclass(frozen=True)
class PlaylistSummary:
    playlist: Playlist
    item_count: int


def list_playlists(s: Session, principal: Principal) -> list[PlaylistSummary]:
    """The caller's playlists, most recently changed first, with how many items each has."""
    counts = (
        select(PlaylistItem.playlist_id, func.count().label("n"))
        .group_by(PlaylistItem.playlist_id)
        .subquery()
    )
    rows = s.execute(
        select(Playlist, func.coalesce(counts.c.n, 0))
        .outerjoin(counts, counts.c.playlist_id == Playlist.id)
        .where(Playlist.user_id == user_of(principal))
        .order_by(Playlist.updated_at.desc(), Playlist.id)
    ).all()
    return [PlaylistSummary(p, int(n)) for p, n in rows]


def playlist_items(
    s: Session, principal: Principal, playlist: Playlist
) -> list[tuple[PlaylistItem, Asset]]:
    """A playlist's items in order, those of assets the caller may no longer see left out."""
    rows = s.execute(
        select(PlaylistItem, Asset)
        .join(Asset, Asset.id == PlaylistItem.asset_id)
        .where(PlaylistItem.playlist_id == playlist.id, watchable_by(principal))
        .order_by(PlaylistItem.position, PlaylistItem.added_at)
    ).all()
    return [(i, a) for i, a in rows]


def update_playlist(
    s: Session,
    principal: Principal,
    playlist_id: str,
    *,
    name: str | None = None,
    description: str | None = None,
) -> Playlist:
    playlist = get_playlist(s, principal, playlist_id)
    if name is not None:
        playlist.name = _text(name, "name", MAX_NAME, required=True)
    if description is not None:
        playlist.description = _text(description, "description", MAX_DESCRIPTION, required=False)
    playlist.updated_at = utcnow()
    return playlist


def delete_playlist(s: Session, principal: Principal, playlist_id: str) -> None:
    playlist = get_playlist(s, principal, playlist_id)
    s.execute(delete(PlaylistItem).where(PlaylistItem.playlist_id == playlist.id))
    s.delete(playlist)


def _ordered(s: Session, playlist: Playlist) -> list[PlaylistItem]:
    return list(
        s.scalars(
            select(PlaylistItem)
            .where(PlaylistItem.playlist_id == playlist.id)
            .order_by(PlaylistItem.position, PlaylistItem.added_at)
        )
    )


def _renumber(items: list[PlaylistItem]) -> None:
    for i, item in enumerate(items):
        if item.position != i:
            item.position = i


def add_item(
    s: Session,
    principal: Principal,
    playlist_id: str,
    asset_id: str,
    position: int | None = None,
) -> tuple[PlaylistItem, bool]:
    """Put an asset the caller may see into their playlist at ``position`` (0 first; the
    end when None or past it); an asset already in it moves there. Returns the item and
    whether it is new.

    :raises InvalidLibraryInput: a negative position.
    :raises LibraryFull: the playlist has :data:`MAX_PLAYLIST_ITEMS` items.
    """
    playlist = get_playlist(s, principal, playlist_id)
    if position is not None and position < 0:
        raise InvalidLibraryInput("position must be 0 or more.")
    asset = _visible_asset(s, principal, asset_id)
    items = _ordered(s, playlist)
    found = next((i for i in items if i.asset_id == asset.id), None)
    if found is not None:
        items.remove(found)
    elif len(items) >= MAX_PLAYLIST_ITEMS:
        raise LibraryFull(f"A playlist holds at most {MAX_PLAYLIST_ITEMS} items.")
    item = found or PlaylistItem(playlist_id=playlist.id, asset_id=asset.id, position=len(items))
    at = len(items) if position is None else min(position, len(items))
    items.insert(at, item)
    if found is None:
        s.add(item)
    _renumber(items)
    playlist.updated_at = utcnow()
    s.flush()
    return item, found is None


def remove_item(s: Session, principal: Principal, playlist_id: str, asset_id: str) -> None:
    """Take an asset out of the caller's playlist (nothing if it was not in it; 404 for an
    asset they cannot see that is not in it either)."""
    playlist = get_playlist(s, principal, playlist_id)
    items = _ordered(s, playlist)
    found = next((i for i in items if i.asset_id == asset_id[:_MAX_ID]), None)
    if found is None:
        _visible_asset(s, principal, asset_id)
        return
    items.remove(found)
    s.delete(found)
    s.flush()
    _renumber(items)
    playlist.updated_at = utcnow()


def playlists_with(s: Session, principal: Principal, asset_id: str) -> list[str]:
    """The ids of the caller's playlists that hold the asset."""
    return list(
        s.scalars(
            select(Playlist.id)
            .join(PlaylistItem, PlaylistItem.playlist_id == Playlist.id)
            .where(Playlist.user_id == user_of(principal), PlaylistItem.asset_id == asset_id)
        )
    )
