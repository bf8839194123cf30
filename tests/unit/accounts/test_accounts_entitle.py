"""The one entitlement decision: signed ids need a grant, the catalog's terms refuse with
their reasons (moderation, window, territory), the grant's max_resolution caps the height."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mediaplane.accounts import (
    ENTITLEMENT_REASONS,
    Decision,
    PlaybackGrant,
    PlaybackTokenRejected,
    Viewer,
    entitle,
    grant_max_height,
)
from mediaplane.catalog import ModerationStatus, PlaybackTerms, Rights

T0 = datetime(2030, 1, 1, tzinfo=UTC)
OPEN = PlaybackTerms(ModerationStatus.NOT_REQUIRED, None)


def _grant(max_resolution: str | None = None) -> PlaybackGrant:
    return PlaybackGrant("pb1", "v", "k1", int(T0.timestamp()) + 60, None, max_resolution)


def test_public_and_unrestricted_plays_without_a_cap() -> None:
    assert entitle(OPEN, Viewer(), signed=False, now=T0) == Decision(True)
    assert entitle(None, Viewer(), signed=False, now=T0).allowed


def test_a_signed_id_needs_a_grant() -> None:
    d = entitle(OPEN, Viewer(), signed=True, now=T0)
    assert (d.allowed, d.reason) == (False, "token_missing")
    assert d.message
    assert entitle(OPEN, Viewer(grant=_grant()), signed=True, now=T0).allowed


@pytest.mark.parametrize(
    ("terms", "territory", "reason"),
    [
        (PlaybackTerms(ModerationStatus.PENDING, None), None, "pending_moderation"),
        (PlaybackTerms(ModerationStatus.REJECTED, None), None, "moderation_rejected"),
        (
            PlaybackTerms(ModerationStatus.APPROVED, Rights(available_from=T0 + timedelta(1))),
            None,
            "outside_availability_window",
        ),
        (
            PlaybackTerms(ModerationStatus.APPROVED, Rights(available_until=T0)),
            None,
            "outside_availability_window",
        ),
        (
            PlaybackTerms(ModerationStatus.APPROVED, Rights(allow=frozenset({"GB"}))),
            "US",
            "not_available_in_territory",
        ),
        (
            PlaybackTerms(ModerationStatus.APPROVED, Rights(deny=frozenset({"US"}))),
            "US",
            "not_available_in_territory",
        ),
    ],
)
def test_the_catalog_terms_refuse_with_their_reason(
    terms: PlaybackTerms, territory: str | None, reason: str
) -> None:
    for signed, grant in ((False, None), (True, _grant())):
        d = entitle(terms, Viewer(lambda: territory, grant), signed=signed, now=T0)
        assert (d.allowed, d.reason) == (False, reason)
        assert reason in ENTITLEMENT_REASONS
        assert d.message


def test_the_token_is_weighed_before_the_terms() -> None:
    held = PlaybackTerms(ModerationStatus.PENDING, None)
    assert entitle(held, Viewer(), signed=True, now=T0).reason == "token_missing"


def test_territory_is_looked_up_only_when_the_rights_restrict_it() -> None:
    def boom() -> str | None:
        raise AssertionError("territory looked up")

    window = PlaybackTerms(ModerationStatus.APPROVED, Rights(available_until=T0 + timedelta(1)))
    assert entitle(window, Viewer(boom), signed=False, now=T0).allowed


def test_max_resolution_caps_the_height() -> None:
    assert entitle(OPEN, Viewer(grant=_grant("720p")), signed=True, now=T0).max_height == 720
    assert grant_max_height(None) is None
    assert grant_max_height(_grant()) is None
    assert grant_max_height(_grant("2160p")) == 2160
    for bad in ("720", "p", "-720p", "0720p", "720P", "1e3p", ""):
        with pytest.raises(PlaybackTokenRejected) as err:
            grant_max_height(_grant(bad))
        assert err.value.code == "token_malformed"
