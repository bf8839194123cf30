"""Access rules in the one entitlement decision: visibility (private), free / plan /
rental / purchase, with their reason codes, judged at explicit times (pure, no database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mediaplane.accounts import (
    DEFAULT_RENTAL_HOURS,
    ENTITLEMENT_REASONS,
    AccessKind,
    AccessRule,
    AccountFacts,
    PlaybackGrant,
    RentalFact,
    SubscriptionFact,
    Viewer,
    Visibility,
    entitle,
)
from mediaplane.catalog import ModerationStatus, PlaybackTerms

T0 = datetime(2030, 1, 1, tzinfo=UTC)
OPEN = PlaybackTerms(ModerationStatus.NOT_REQUIRED, None)
HELD = PlaybackTerms(ModerationStatus.PENDING, None)
USER = Viewer(user_id="u1")
PLAN = AccessRule(kind=AccessKind.PLAN)
RENTAL = AccessRule(kind=AccessKind.RENTAL, rental_hours=24)
PURCHASE = AccessRule(kind=AccessKind.PURCHASE)
PRIVATE = AccessRule(visibility=Visibility.PRIVATE)


def _grant() -> PlaybackGrant:
    return PlaybackGrant("pb1", "v", "k1", int(T0.timestamp()) + 60, "u1", "720p")


def _why(rule: AccessRule, facts: AccountFacts = AccountFacts(), viewer: Viewer = USER) -> str:
    d = entitle(OPEN, viewer, signed=False, now=T0, rule=rule, facts=facts)
    assert not d.allowed and d.message and d.reason in ENTITLEMENT_REASONS
    return d.reason or ""


def test_free_and_unlisted_play_for_anyone() -> None:
    for rule in (AccessRule(), AccessRule(visibility=Visibility.UNLISTED)):
        assert entitle(OPEN, Viewer(), signed=False, now=T0, rule=rule).allowed
    assert not AccessRule(visibility=Visibility.UNLISTED).gated
    assert PLAN.gated and PRIVATE.gated


def test_private_plays_for_members_or_with_a_token() -> None:
    assert _why(PRIVATE, viewer=Viewer()) == "private"
    assert _why(PRIVATE) == "private"  # an account that is no member
    member = AccountFacts(member=True)
    assert entitle(OPEN, USER, signed=False, now=T0, rule=PRIVATE, facts=member).allowed
    assert entitle(OPEN, Viewer(grant=_grant()), signed=True, now=T0, rule=PRIVATE).allowed


def test_private_is_weighed_before_the_catalog_terms() -> None:
    """A private video says nothing of its moderation to those who may not see it."""
    d = entitle(HELD, Viewer(), signed=False, now=T0, rule=PRIVATE)
    assert d.reason == "private"
    d = entitle(HELD, USER, signed=False, now=T0, rule=PRIVATE, facts=AccountFacts(member=True))
    assert d.reason == "pending_moderation"


@pytest.mark.parametrize(
    ("rule", "needs"),
    [(PLAN, "needs_subscription"), (RENTAL, "needs_rental"), (PURCHASE, "needs_purchase")],
)
def test_a_paid_rule_needs_an_account_then_its_grant(rule: AccessRule, needs: str) -> None:
    assert _why(rule, viewer=Viewer()) == "sign_in_required"
    assert _why(rule) == needs
    member = AccountFacts(member=True)  # a channel's own people watch what they publish
    assert entitle(OPEN, USER, signed=False, now=T0, rule=rule, facts=member).allowed
    bought = AccountFacts(purchased=True)  # owning it beats renting it or a plan
    assert entitle(OPEN, USER, signed=False, now=T0, rule=rule, facts=bought).allowed


def test_a_subscription_plays_until_it_expires_with_the_plans_stream_limit() -> None:
    sub = SubscriptionFact("p1", T0 + timedelta(hours=1), 2)
    facts = AccountFacts(subscriptions=(sub,))
    d = entitle(OPEN, USER, signed=False, now=T0, rule=PLAN, facts=facts)
    assert d.allowed and d.max_streams == 2
    later = T0 + timedelta(hours=1)
    d = entitle(OPEN, USER, signed=False, now=later, rule=PLAN, facts=facts)
    assert (d.allowed, d.reason) == (False, "needs_subscription")
    # two plans: the larger limit; an unlimited plan lifts it
    more = AccountFacts(subscriptions=(sub, SubscriptionFact("p2", None, 5)))
    assert entitle(OPEN, USER, signed=False, now=T0, rule=PLAN, facts=more).max_streams == 5
    free = AccountFacts(subscriptions=(sub, SubscriptionFact("p3", None, None)))
    assert entitle(OPEN, USER, signed=False, now=T0, rule=PLAN, facts=free).max_streams == 0


def test_a_rental_window_starts_at_first_play_and_ends() -> None:
    fresh = AccountFacts(rentals=(RentalFact("g1", None, None),))
    d = entitle(OPEN, USER, signed=False, now=T0, rule=RENTAL, facts=fresh)
    assert d.allowed and d.start_rental == "g1"
    started = AccountFacts(rentals=(RentalFact("g1", None, T0),))
    inside = T0 + timedelta(hours=23, minutes=59)
    d = entitle(OPEN, USER, signed=False, now=inside, rule=RENTAL, facts=started)
    assert d.allowed and d.start_rental is None
    ended = T0 + timedelta(hours=24)  # the asset's 24 h
    d = entitle(OPEN, USER, signed=False, now=ended, rule=RENTAL, facts=started)
    assert (d.allowed, d.reason) == (False, "rental_expired")
    # the grant's own window wins over the asset's; with neither, the default
    own = AccountFacts(rentals=(RentalFact("g1", 48, T0),))
    assert entitle(OPEN, USER, signed=False, now=ended, rule=RENTAL, facts=own).allowed
    bare = AccessRule(kind=AccessKind.RENTAL)
    edge = T0 + timedelta(hours=DEFAULT_RENTAL_HOURS)
    assert entitle(OPEN, USER, signed=False, now=edge - timedelta(seconds=1), rule=bare,
                   facts=started).allowed  # fmt: skip
    assert _why_at(bare, started, edge) == "rental_expired"
    # an ended rental and a new one: the new one starts
    again = AccountFacts(rentals=(RentalFact("g1", None, T0), RentalFact("g2", None, None)))
    d = entitle(OPEN, USER, signed=False, now=ended, rule=RENTAL, facts=again)
    assert d.allowed and d.start_rental == "g2"


def _why_at(rule: AccessRule, facts: AccountFacts, now: datetime) -> str | None:
    return entitle(OPEN, USER, signed=False, now=now, rule=rule, facts=facts).reason


def test_the_token_cap_and_the_plan_limit_travel_together() -> None:
    facts = AccountFacts(subscriptions=(SubscriptionFact("p1", None, 3),))
    viewer = Viewer(grant=_grant(), user_id="u1")
    d = entitle(OPEN, viewer, signed=True, now=T0, rule=PLAN, facts=facts)
    assert (d.allowed, d.max_height, d.max_streams) == (True, 720, 3)


def test_the_catalog_terms_come_before_the_rule() -> None:
    assert _why_at(PLAN, AccountFacts(), T0) == "needs_subscription"
    d = entitle(HELD, Viewer(), signed=False, now=T0, rule=PLAN)
    assert d.reason == "pending_moderation"
