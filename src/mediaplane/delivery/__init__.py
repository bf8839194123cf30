"""Delivery: the origin that serves playback — manifests rendered from memory per request
(where per-viewer changes will go: tokens, ads), segments sent as files with range support,
caching headers and CORS, and thumbnails on a bounded grid (:mod:`._thumbs`); the lean
path for cached playback requests is :mod:`._fast`; live playback ids are answered in
front of both by :mod:`._live` (the live session's playlists and segments, blocking reload).

Routes (:mod:`._origin`, :mod:`._thumbs`) → the playback service (:mod:`._service`:
lookup, render, serve) → database, store, ffmpeg. Errors::

    DeliveryError
    └── PlaybackNotFound   404 (a mediaplane.errors.NotFound; ``code`` not_found or
        └── NotReady       asset_errored), asset_not_ready with Retry-After

Refusals (moderation, window, territory; a signed playback id's missing or bad token; an
access rule's ``sign_in_required``, ``needs_subscription``, ``needs_rental``,
``rental_expired``, ``needs_purchase``) are 403 :class:`mediaplane.http.ApiError` with the
reason as ``code``; a private asset refused is a 404 with ``code`` ``private``. The decision
is :func:`mediaplane.accounts.entitle` (:mod:`._access`); the viewer's account and what it
holds are looked up at the master playlist and the MPD (:mod:`._viewers`), and the carry
token names the account for the media playlists and segments.
Protected assets (:mod:`._keys`): HLS AES-128 keys at ``GET /keys/{kid}`` and the W3C
ClearKey licence server at ``POST /drm/clearkey``, both behind the carry token and the
entitlement decision, every release audited. A start past the account's
concurrent-stream limit is a 429 ``too_many_streams``; players keep a paused stream counted
with ``POST /play/{id}/stream?st=…`` and free it with ``DELETE`` (the same URL).
"""

from __future__ import annotations

from ._access import check_playback
from ._fast import PlayOrigin
from ._keys import router as keys_router
from ._live import LiveOrigin
from ._origin import router
from ._service import DeliveryError, NotReady, PlaybackNotFound
from ._thumbs import ThumbnailLimiter

__all__ = [
    "DeliveryError",
    "LiveOrigin",
    "NotReady",
    "PlayOrigin",
    "PlaybackNotFound",
    "ThumbnailLimiter",
    "check_playback",
    "keys_router",
    "router",
]
