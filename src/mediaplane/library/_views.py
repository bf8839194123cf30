"""What the routers call: one function per request, the database work inside, answered in
the API's JSON shape (blocking: the routers run them in a thread)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mediaplane.catalog import Asset, PlaybackPolicy, playback_urls

from . import _service as svc

if TYPE_CHECKING:
    from mediaplane.accounts import Principal
    from mediaplane.runtime import Runtime

    from ._models import Playlist, PlaylistItem, WatchEntry


def asset_summary(asset: Asset) -> dict[str, Any]:
    """What a library list shows of an asset: enough to draw a card and link to it."""
    ids = sorted(asset.playback_ids, key=lambda p: p.policy is not PlaybackPolicy.PUBLIC)
    pid = ids[0].id if ids else None
    urls = playback_urls("", pid) if pid else None
    return {
        "id": asset.id,
        "title": asset.title,
        "status": str(asset.status),
        "duration": round(asset.duration, 3) if asset.duration else None,
        "playback_id": pid,
        "watch_url": urls.watch if urls else None,
        "thumbnail_url": urls.thumbnail if urls else None,
    }


def entry_json(entry: WatchEntry) -> dict[str, Any]:
    return {
        "asset_id": entry.asset_id,
        "position_seconds": round(entry.position_seconds, 3),
        "duration_seconds": (
            round(entry.duration_seconds, 3) if entry.duration_seconds is not None else None
        ),
        "resume_position_seconds": round(svc.resume_position(entry), 3),
        "finished": entry.finished,
        "updated_at": entry.updated_at.isoformat(),
    }


def _playlist_json(playlist: Playlist, item_count: int) -> dict[str, Any]:
    return {
        "id": playlist.id,
        "name": playlist.name,
        "description": playlist.description,
        "item_count": item_count,
        "created_at": playlist.created_at.isoformat(),
        "updated_at": playlist.updated_at.isoformat(),
    }


def _item_json(item: PlaylistItem, asset: Asset) -> dict[str, Any]:
    return {
        "position": item.position,
        "added_at": item.added_at.isoformat(),
        "asset": asset_summary(asset),
    }


# --- history --------------------------------------------------------------------------------


def record_progress_view(
    rt: Runtime, principal: Principal, asset_id: str, position: float, duration: float | None
) -> dict[str, Any]:
    with rt.db.session() as s:
        return entry_json(svc.record_progress(s, principal, asset_id, position, duration))


def history_view(
    rt: Runtime, principal: Principal, *, limit: int, page: int, continue_watching: bool
) -> tuple[list[dict[str, Any]], int]:
    with rt.db.session() as s:
        rows, total = svc.history(
            s, principal, limit=limit, page=page, continue_watching=continue_watching
        )
        return [{**entry_json(e), "asset": asset_summary(a)} for e, a in rows], total


def forget_view(rt: Runtime, principal: Principal, asset_id: str | None) -> None:
    with rt.db.session() as s:
        if asset_id is None:
            svc.forget_all(s, principal)
        else:
            svc.forget(s, principal, asset_id)


def asset_state_view(rt: Runtime, principal: Principal, asset_id: str) -> dict[str, Any]:
    """The caller's library state for one asset: progress, favourite, playlists holding it."""
    with rt.db.session() as s:
        entry = svc.progress_of(s, principal, asset_id)
        return {
            "asset_id": asset_id,
            "progress": entry_json(entry) if entry is not None else None,
            "favourite": svc.is_favourite(s, principal, asset_id),
            "playlist_ids": svc.playlists_with(s, principal, asset_id),
        }


# --- favourites -----------------------------------------------------------------------------


def add_favourite_view(rt: Runtime, principal: Principal, asset_id: str) -> bool:
    with rt.db.session() as s:
        return svc.add_favourite(s, principal, asset_id)


def remove_favourite_view(rt: Runtime, principal: Principal, asset_id: str) -> None:
    with rt.db.session() as s:
        svc.remove_favourite(s, principal, asset_id)


def favourites_view(
    rt: Runtime, principal: Principal, *, limit: int, page: int
) -> tuple[list[dict[str, Any]], int]:
    with rt.db.session() as s:
        rows, total = svc.favourites(s, principal, limit=limit, page=page)
        return [
            {"created_at": f.created_at.isoformat(), "asset": asset_summary(a)} for f, a in rows
        ], total


# --- playlists ------------------------------------------------------------------------------


def playlist_view(rt: Runtime, principal: Principal, playlist_id: str) -> dict[str, Any]:
    """One of the caller's playlists with its items in order."""
    with rt.db.session() as s:
        playlist = svc.get_playlist(s, principal, playlist_id)
        items = svc.playlist_items(s, principal, playlist)
        return {
            **_playlist_json(playlist, len(items)),
            "items": [_item_json(i, a) for i, a in items],
        }


def create_playlist_view(
    rt: Runtime, principal: Principal, name: str, description: str
) -> dict[str, Any]:
    with rt.db.session() as s:
        playlist_id = svc.create_playlist(s, principal, name, description).id
    return playlist_view(rt, principal, playlist_id)


def playlists_view(rt: Runtime, principal: Principal) -> list[dict[str, Any]]:
    with rt.db.session() as s:
        return [_playlist_json(p.playlist, p.item_count) for p in svc.list_playlists(s, principal)]


def update_playlist_view(
    rt: Runtime,
    principal: Principal,
    playlist_id: str,
    name: str | None,
    description: str | None,
) -> dict[str, Any]:
    with rt.db.session() as s:
        svc.update_playlist(s, principal, playlist_id, name=name, description=description)
    return playlist_view(rt, principal, playlist_id)


def delete_playlist_view(rt: Runtime, principal: Principal, playlist_id: str) -> None:
    with rt.db.session() as s:
        svc.delete_playlist(s, principal, playlist_id)


def add_item_view(
    rt: Runtime, principal: Principal, playlist_id: str, asset_id: str, position: int | None
) -> tuple[dict[str, Any], bool]:
    with rt.db.session() as s:
        _, created = svc.add_item(s, principal, playlist_id, asset_id, position)
    return playlist_view(rt, principal, playlist_id), created


def remove_item_view(rt: Runtime, principal: Principal, playlist_id: str, asset_id: str) -> None:
    with rt.db.session() as s:
        svc.remove_item(s, principal, playlist_id, asset_id)
