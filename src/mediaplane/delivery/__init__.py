"""Delivery: the origin that serves playback — manifests rendered from memory per request
(where per-viewer changes will go: tokens, ads), segments sent as files with range support,
caching headers and CORS, and on-demand thumbnails.

Errors are 4xx JSON responses through :class:`mediaplane.http.ApiError`.
"""

from __future__ import annotations

from ._access import check_playback
from ._origin import router

__all__ = ["check_playback", "router"]
