"""Delivery: the origin that serves playback — manifests rendered from memory per request
(where per-viewer changes will go: tokens, ads), segments sent as files with range support,
caching headers and CORS, and thumbnails on a bounded grid (:mod:`._thumbs`); the lean
path for cached playback requests is :mod:`._fast`.

Errors are 4xx JSON responses through :class:`mediaplane.http.ApiError`.
"""

from __future__ import annotations

from ._access import check_playback
from ._fast import PlayOrigin
from ._origin import router
from ._thumbs import ThumbnailLimiter

__all__ = ["PlayOrigin", "ThumbnailLimiter", "check_playback", "router"]
