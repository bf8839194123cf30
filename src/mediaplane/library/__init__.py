"""Library: what a signed-in viewer keeps — watch history with resume positions ("continue
watching"), favourites and private playlists — and its REST API (:data:`router`).

It sits above ``catalog`` (what a viewer may watch is the catalog's ``watchable_by``) and
``accounts`` (who asks), below ``web``.

Errors::

    LibraryError                one root; ``code`` and ``status`` for the API
    ├── InvalidLibraryInput     a bad position, name or playlist position (400)
    └── LibraryFull             too many playlists, or items in one (409)
    PlaylistNotFound            not the caller's playlist (a mediaplane.errors.NotFound: 404)
"""

from __future__ import annotations

from ._api import router
from ._errors import InvalidLibraryInput, LibraryError, LibraryFull, PlaylistNotFound
from ._models import Favourite, Playlist, PlaylistItem, WatchEntry
from ._service import (
    FINISHED_SHARE,
    add_favourite,
    add_item,
    create_playlist,
    delete_playlist,
    favourites,
    forget,
    forget_all,
    get_playlist,
    history,
    is_favourite,
    list_playlists,
    playlist_items,
    record_progress,
    remove_favourite,
    remove_item,
    resume_position,
    update_playlist,
)
from ._views import asset_summary, favourites_view, history_view, playlist_view, playlists_view

__all__ = [
    "FINISHED_SHARE",
    "Favourite",
    "InvalidLibraryInput",
    "LibraryError",
    "LibraryFull",
    "Playlist",
    "PlaylistItem",
    "PlaylistNotFound",
    "WatchEntry",
    "add_favourite",
    "add_item",
    "asset_summary",
    "create_playlist",
    "delete_playlist",
    "favourites",
    "favourites_view",
    "forget",
    "forget_all",
    "get_playlist",
    "history",
    "history_view",
    "is_favourite",
    "list_playlists",
    "playlist_items",
    "playlist_view",
    "playlists_view",
    "record_progress",
    "remove_favourite",
    "remove_item",
    "resume_position",
    "router",
    "update_playlist",
]
