"""The playback access check: moderation hold, availability window, territory.

Called by the origin on every playback request (manifests, segments, thumbnails) with what
its short-lived lookup cache holds about the asset; the window is evaluated against the
current time on each request, never at cache time. The viewer's territory is looked up only
when the asset's rights restrict territories.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from mediaplane.catalog import (
    ModerationStatus,
    Refusal,
    Rights,
    load_territory_table,
    normalize_territory,
)
from mediaplane.http import ApiError

if TYPE_CHECKING:
    from fastapi import Request

    from mediaplane.config import Settings

__all__ = ["check_playback", "playback_refusal", "viewer_territory"]

_MODERATION_REFUSALS = {
    ModerationStatus.PENDING: Refusal(
        "pending_moderation", "This video is waiting for moderation and cannot be played yet."
    ),
    ModerationStatus.REJECTED: Refusal(
        "moderation_rejected", "This video was rejected by moderation and cannot be played."
    ),
}


def playback_refusal(
    moderation: ModerationStatus,
    rights: Rights | None,
    territory: Callable[[], str | None],
    now: datetime,
) -> Refusal | None:
    """Why playback is refused, or None: moderation first, then the window, then territory.

    :param territory: returns the viewer's ISO 3166-1 alpha-2 code (None: unknown); called
        only when the rights restrict territories.
    :param now: the current time, timezone-aware.
    """
    refused = _MODERATION_REFUSALS.get(moderation)
    if refused is not None or rights is None:
        return refused
    refused = rights.window_refusal(now)
    if refused is not None or not rights.restricts_territory:
        return refused
    return rights.territory_refusal(territory())


def viewer_territory(request: Request, settings: Settings) -> str | None:
    """The viewer's country: the trusted header when configured and present with a country,
    else the operator's CIDR table for the socket peer's address, else None (unknown)."""
    if settings.territory_header is not None:
        code = normalize_territory(request.headers.get(settings.territory_header))
        if code is not None:
            return code
    if settings.territory_cidr_file is not None and request.client is not None:
        return load_territory_table(settings.territory_cidr_file).lookup(request.client.host)
    return None


def check_playback(
    request: Request,
    settings: Settings,
    *,
    moderation: ModerationStatus,
    rights: Rights | None,
) -> None:
    """Raise a 403 :class:`ApiError` with the refusal's code when playback is not allowed."""
    if rights is None and moderation not in _MODERATION_REFUSALS:
        return  # the common case: nothing to check
    refused = playback_refusal(
        moderation, rights, lambda: viewer_territory(request, settings), datetime.now(UTC)
    )
    if refused is not None:
        # A refusal depends on the viewer and the clock: no shared cache may keep it.
        raise ApiError(403, refused.code, refused.message, headers={"Cache-Control": "no-store"})
