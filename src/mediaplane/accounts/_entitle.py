"""The entitlement decision: may this viewer play this asset now, and at what maximum height.

One function, :func:`entitle`, answers it for every caller (the origin, the API, later the
DRM key server), with a stable reason code when the answer is no. What it weighs, in order:

1. signed playback: a signed playback id plays only with a verified token (its grant);
2. the asset's terms (the catalog's rules: moderation hold, availability window, territory),
   passed in as :class:`Terms` so that accounts need not know the catalog;
3. the grant's ``max_resolution`` caps the height.

Plans, rentals and concurrent streams slot in between 2 and 3: they need the viewer's
account (:attr:`Viewer.user_id`) and answer ``needs_subscription``, ``rental_expired``,
``too_many_streams``.

Pure code: no database, no HTTP; the caller looks the facts up (cached at the origin).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from ._errors import PlaybackTokenRejected
from ._signing import PlaybackGrant

__all__ = ["ENTITLEMENT_REASONS", "Decision", "Terms", "Viewer", "entitle", "grant_max_height"]

#: Reasons :func:`entitle` gives besides the token reasons of
#: :data:`mediaplane.accounts.REJECTION_REASONS` (a token is checked before entitle runs).
ENTITLEMENT_REASONS = frozenset(
    {
        "token_missing",
        "pending_moderation",
        "moderation_rejected",
        "outside_availability_window",
        "not_available_in_territory",
        "too_many_streams",
    }
)
_RESOLUTION = re.compile(r"^([1-9][0-9]{1,4})p$")


class Terms(Protocol):
    """What the catalog says of an asset's playability (its moderation and rights)."""

    def refusal(self, territory: Callable[[], str | None], now: datetime) -> tuple[str, str] | None:
        """(code, message) when the catalog refuses playback, else None.

        :param territory: the viewer's ISO 3166-1 alpha-2 code, looked up only if needed.
        """
        ...


def _unknown() -> str | None:
    return None


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who asks: where from (looked up lazily), the verified playback token, the account."""

    territory: Callable[[], str | None] = _unknown
    grant: PlaybackGrant | None = None
    user_id: str | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer: ``allowed``, else ``reason`` (a stable code) and ``message`` for the viewer;
    ``max_height`` caps the video renditions offered (None: no cap); ``max_streams`` is the
    viewer's plan's limit on simultaneous streams (None: the install's setting, 0: none).
    ``too_many_streams`` is decided where streams are counted (the origin), with that limit."""

    allowed: bool
    reason: str | None = None
    message: str = ""
    max_height: int | None = None
    max_streams: int | None = None


ALLOWED = Decision(True)
_TOKEN_MISSING = Decision(
    False,
    "token_missing",
    "This video plays only with a signed playback token: add ?token=<JWT> to its URL.",
)


def grant_max_height(grant: PlaybackGrant | None) -> int | None:
    """The height cap of a token's ``max_resolution`` (``"720p"`` → 720; None: no cap).

    :raises PlaybackTokenRejected: ``token_malformed`` for a value that is not ``<N>p``: a
        cap the signer meant must not be dropped silently.
    """
    if grant is None or grant.max_resolution is None:
        return None
    m = _RESOLUTION.match(grant.max_resolution)
    if m is None:
        raise PlaybackTokenRejected(
            "The playback token's max_resolution is not like 720p or 1080p.", "token_malformed"
        )
    return int(m.group(1))


def entitle(terms: Terms | None, viewer: Viewer, *, signed: bool, now: datetime) -> Decision:
    """May ``viewer`` play the asset with ``terms`` now (a signed playback id when ``signed``)?

    :param terms: the catalog's rules for the asset (None: unrestricted).
    :param viewer: the viewer; ``viewer.grant`` is a token already verified for this
        playback id and use (:func:`mediaplane.accounts.verify_playback_token`).
    :param now: the current time, timezone-aware (windows are never judged at cache time).
    """
    if signed and viewer.grant is None:
        return _TOKEN_MISSING
    refused = terms.refusal(viewer.territory, now) if terms is not None else None
    if refused is not None:
        return Decision(False, refused[0], refused[1])
    cap = grant_max_height(viewer.grant)
    return ALLOWED if cap is None else Decision(True, max_height=cap)
