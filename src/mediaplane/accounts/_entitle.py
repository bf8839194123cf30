"""The entitlement decision: may this viewer play this asset now, and at what maximum height.

One function, :func:`entitle`, answers it for every caller (the origin, the API, later the
DRM key server), with a stable reason code when the answer is no. What it weighs, in order:

1. signed playback: a signed playback id plays only with a verified token (its grant);
2. visibility: a ``private`` asset plays only for members of its channel (and admins) or
   with a verified playback token (``private``);
3. the asset's terms (the catalog's rules: moderation hold, availability window, territory),
   passed in as :class:`Terms` so that accounts need not know the catalog;
4. the access rule (:class:`AccessRule`): ``free`` plays for anyone; ``plan``, ``rental``
   and ``purchase`` need an account (``sign_in_required``) holding a grant, weighed from
   :class:`AccountFacts` (``needs_subscription``, ``needs_rental``, ``rental_expired``,
   ``needs_purchase``); members of the asset's channel always play;
5. the grant's ``max_resolution`` caps the height.

The decision carries what the caller acts on: ``max_streams`` (the plan's limit of
concurrent streams per account, None: no limit; the stream limiter reads it) and
``start_rental`` (a rental grant whose window starts with this play: the caller records
its start, once).

Pure code: no database, no HTTP; the caller looks the facts up (cached at the origin).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from ._errors import PlaybackTokenRejected
from ._signing import PlaybackGrant

__all__ = [
    "DEFAULT_RENTAL_HOURS",
    "ENTITLEMENT_REASONS",
    "AccessKind",
    "AccessRule",
    "AccountFacts",
    "Decision",
    "RentalFact",
    "SubscriptionFact",
    "Terms",
    "Viewer",
    "Visibility",
    "entitle",
    "grant_max_height",
]

#: Reasons :func:`entitle` gives besides the token reasons of
#: :data:`mediaplane.accounts.REJECTION_REASONS` (a token is checked before entitle runs).
ENTITLEMENT_REASONS = frozenset(
    {
        "token_missing",
        "pending_moderation",
        "moderation_rejected",
        "outside_availability_window",
        "not_available_in_territory",
        "private",
        "sign_in_required",
        "needs_subscription",
        "needs_purchase",
        "needs_rental",
        "rental_expired",
        "too_many_streams",
    }
)
#: A rental's window when neither the grant nor the asset names one.
DEFAULT_RENTAL_HOURS = 48
_RESOLUTION = re.compile(r"^([1-9][0-9]{1,4})p$")


class Terms(Protocol):
    """What the catalog says of an asset's playability (its moderation and rights)."""

    def refusal(self, territory: Callable[[], str | None], now: datetime) -> tuple[str, str] | None:
        """(code, message) when the catalog refuses playback, else None.

        :param territory: the viewer's ISO 3166-1 alpha-2 code, looked up only if needed.
        """
        ...


class Visibility(enum.StrEnum):
    """Who finds an asset: ``public`` is listed, ``unlisted`` plays by link only,
    ``private`` plays only for its channel's members or with a signed playback token."""

    PUBLIC = "public"
    UNLISTED = "unlisted"
    PRIVATE = "private"


class AccessKind(enum.StrEnum):
    """What playing an asset takes: nothing, a subscription to a plan covering its
    channel, a rental (a window from the first play) or a purchase."""

    FREE = "free"
    PLAN = "plan"
    RENTAL = "rental"
    PURCHASE = "purchase"


@dataclass(frozen=True, slots=True)
class AccessRule:
    """An asset's visibility and access rule (``rental_hours``: the window of a rental
    grant that names none)."""

    visibility: Visibility = Visibility.PUBLIC
    kind: AccessKind = AccessKind.FREE
    rental_hours: int | None = None

    @property
    def gated(self) -> bool:
        """Whether playing needs more than a link: a private or a non-free asset."""
        return self.visibility is Visibility.PRIVATE or self.kind is not AccessKind.FREE


OPEN_RULE = AccessRule()


@dataclass(frozen=True, slots=True)
class SubscriptionFact:
    """A live subscription of the viewer's to a plan covering the asset's channel."""

    plan_id: str
    expires_at: datetime | None
    max_streams: int | None


@dataclass(frozen=True, slots=True)
class RentalFact:
    """A rental grant of the viewer's for the asset: its window and when it started
    (None: not played yet)."""

    grant_id: str
    window_hours: int | None
    started_at: datetime | None


@dataclass(frozen=True, slots=True)
class AccountFacts:
    """What the caller looked up about the viewer's account for one asset."""

    #: A member of the asset's channel (any role), or an admin.
    member: bool = False
    subscriptions: tuple[SubscriptionFact, ...] = ()
    rentals: tuple[RentalFact, ...] = ()
    purchased: bool = False


NO_FACTS = AccountFacts()


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
    viewer's plan's limit on simultaneous streams (None: no plan decides, the install's
    setting applies; 0: no limit); ``start_rental`` the id of a rental grant whose window
    starts now (the caller records it). ``too_many_streams`` is decided where streams are
    counted (the origin), with that limit."""

    allowed: bool
    reason: str | None = None
    message: str = ""
    max_height: int | None = None
    max_streams: int | None = None
    start_rental: str | None = None


ALLOWED = Decision(True)
_TOKEN_MISSING = Decision(
    False,
    "token_missing",
    "This video plays only with a signed playback token: add ?token=<JWT> to its URL.",
)


def _no(reason: str, message: str) -> Decision:
    return Decision(False, reason, message)


_PRIVATE = _no("private", "This video is private.")
_SIGN_IN = _no("sign_in_required", "Sign in to watch this video.")
_NEEDS = {
    AccessKind.PLAN: _no(
        "needs_subscription", "This video is part of a plan: subscribe to watch it."
    ),
    AccessKind.RENTAL: _no("needs_rental", "Rent this video to watch it."),
    AccessKind.PURCHASE: _no("needs_purchase", "Buy this video to watch it."),
}
_RENTAL_EXPIRED = _no("rental_expired", "Your rental of this video has ended.")


def _subscribed(facts: AccountFacts, now: datetime) -> Decision | None:
    live = [f for f in facts.subscriptions if f.expires_at is None or now < f.expires_at]
    if not live:
        return None
    limits = [f.max_streams for f in live]
    # a plan without a limit (None) allows any number: 0; else the most generous plan's
    return Decision(True, max_streams=0 if None in limits else max(x or 0 for x in limits))


def _rented(rule: AccessRule, facts: AccountFacts, now: datetime) -> Decision | None:
    """The rental that lets the viewer play now (a window not ended, else one not started),
    ``rental_expired`` when every one has ended, None without any."""
    if not facts.rentals:
        return None
    fresh = None
    for r in facts.rentals:
        if r.started_at is None:
            fresh = fresh or r
            continue
        hours = r.window_hours or rule.rental_hours or DEFAULT_RENTAL_HOURS
        if now < r.started_at + timedelta(hours=hours):
            return ALLOWED
    if fresh is not None:
        return Decision(True, start_rental=fresh.grant_id)
    return _RENTAL_EXPIRED


def _by_rule(rule: AccessRule, user_id: str | None, facts: AccountFacts, now: datetime) -> Decision:
    """The access rule's decision (before the height cap)."""
    if rule.kind is AccessKind.FREE or facts.member:
        return ALLOWED
    if user_id is None:
        return _SIGN_IN
    if facts.purchased:  # owning a video beats renting it or a plan
        return ALLOWED
    found = None
    if rule.kind is AccessKind.PLAN:
        found = _subscribed(facts, now)
    elif rule.kind is AccessKind.RENTAL:
        found = _rented(rule, facts, now)
    return found or _NEEDS[rule.kind]


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


def entitle(
    terms: Terms | None,
    viewer: Viewer,
    *,
    signed: bool,
    now: datetime,
    rule: AccessRule = OPEN_RULE,
    facts: AccountFacts = NO_FACTS,
) -> Decision:
    """May ``viewer`` play the asset with ``terms`` now (a signed playback id when ``signed``)?

    :param terms: the catalog's rules for the asset (None: unrestricted).
    :param viewer: the viewer; ``viewer.grant`` is a token already verified for this
        playback id and use (:func:`mediaplane.accounts.verify_playback_token`);
        ``viewer.user_id`` the account (a session's user, or the token's viewer claim).
    :param now: the current time, timezone-aware (windows are never judged at cache time).
    :param rule: the asset's visibility and access rule (default: public and free).
    :param facts: what the viewer's account holds for this asset (:class:`AccountFacts`).
    """
    if signed and viewer.grant is None:
        return _TOKEN_MISSING
    if rule.visibility is Visibility.PRIVATE and not (facts.member or viewer.grant):
        return _PRIVATE
    refused = terms.refusal(viewer.territory, now) if terms is not None else None
    if refused is not None:
        return Decision(False, refused[0], refused[1])
    decision = _by_rule(rule, viewer.user_id, facts, now)
    cap = grant_max_height(viewer.grant)
    if not decision.allowed or cap is None:
        return decision
    return Decision(
        True, max_height=cap, max_streams=decision.max_streams, start_rental=decision.start_rental
    )
