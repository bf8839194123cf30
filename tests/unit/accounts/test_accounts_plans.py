"""Plans and grants in the database: what :func:`account_facts` reads for one asset, a
rental's start recorded once, revoked and expired grants, and bad input refused."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.orm import Session

from mediaplane.accounts import (
    AccountsError,
    Channel,
    ChannelMember,
    ChannelRole,
    GrantInput,
    GrantKind,
    Role,
    User,
    account_facts,
    create_grant,
    create_plan,
    delete_plan,
    list_grants,
    plan_channel_ids,
    record_rental_start,
    revoke_grant,
    update_plan,
)

T0 = datetime(2030, 1, 1, tzinfo=UTC)


def _user(s: Session, role: str = "viewer") -> str:
    """A user row (no password: hashing one costs more than the test)."""
    user = User(email=f"{secrets.token_hex(6)}@example.org", role=Role(role))
    s.add(user)
    s.flush()
    return user.id


def _channel(s: Session) -> str:
    c = Channel(name="c")
    s.add(c)
    s.flush()
    return c.id


def test_a_subscription_covers_the_plans_channels_only(session: Session) -> None:
    s = session
    user, a, b = _user(s), _channel(s), _channel(s)
    plan = create_plan(s, "Gold", [a, a], max_streams=2)
    assert plan_channel_ids(s, plan.id) == [a]
    create_grant(s, GrantInput(user, GrantKind.SUBSCRIPTION, plan_id=plan.id, expires_at=T0))
    facts = account_facts(s, user, "asset1", a)
    assert [(f.plan_id, f.expires_at, f.max_streams) for f in facts.subscriptions] == [
        (plan.id, T0, 2)
    ]
    assert account_facts(s, user, "asset1", b).subscriptions == ()
    assert not facts.member and not facts.purchased
    update_plan(s, plan.id, channel_ids=[b], max_streams=None)
    assert account_facts(s, user, "asset1", a).subscriptions == ()
    assert account_facts(s, user, "asset1", b).subscriptions[0].max_streams is None
    delete_plan(s, plan.id)  # its subscriptions go with it
    assert list_grants(s, user_id=user) == []


def test_rentals_purchases_and_membership(session: Session) -> None:
    s = session
    user, other, channel = _user(s), _user(s), _channel(s)
    rental = create_grant(s, GrantInput(user, GrantKind.RENTAL, asset_id="a1", window_hours=3))
    create_grant(s, GrantInput(other, GrantKind.PURCHASE, asset_id="a1"))
    facts = account_facts(s, user, "a1", channel)
    assert [(r.grant_id, r.window_hours, r.started_at) for r in facts.rentals] == [
        (rental.id, 3, None)
    ]
    assert not facts.purchased and account_facts(s, other, "a1", channel).purchased
    assert account_facts(s, user, "a2", channel).rentals == ()  # another asset
    assert record_rental_start(s, rental.id, T0)
    assert not record_rental_start(s, rental.id, T0 + timedelta(hours=1))  # once
    assert account_facts(s, user, "a1", channel).rentals[0].started_at == T0
    revoke_grant(s, rental.id)
    assert account_facts(s, user, "a1", channel).rentals == ()
    s.add(ChannelMember(channel_id=channel, user_id=user, role=ChannelRole.VIEWER))
    s.flush()
    assert account_facts(s, user, "a1", channel).member
    assert account_facts(s, _user(s, "admin"), "a1", None).member  # admins see everything
    assert account_facts(s, None, "a1", channel) == account_facts(s, "nobody", "a1", channel)


@pytest.mark.parametrize(
    ("new", "code"),
    [
        (GrantInput("", GrantKind.PURCHASE, asset_id="a1"), "invalid_user"),
        (GrantInput("{user}", GrantKind.SUBSCRIPTION), "invalid_grant"),
        (GrantInput("{user}", GrantKind.SUBSCRIPTION, plan_id="nope"), "invalid_plan"),
        (GrantInput("{user}", GrantKind.RENTAL), "invalid_grant"),
        (GrantInput("{user}", GrantKind.PURCHASE, asset_id="a", window_hours=2), "invalid_grant"),
        (
            GrantInput("{user}", GrantKind.RENTAL, asset_id="a", window_hours=0),
            "invalid_window_hours",
        ),
        (GrantInput("{user}", GrantKind.RENTAL, asset_id="a", expires_at=T0), "invalid_grant"),
    ],
)
def test_bad_grants_are_refused(session: Session, new: GrantInput, code: str) -> None:
    user = _user(session)
    fixed = GrantInput(
        new.user_id.replace("{user}", user),
        new.kind,
        new.plan_id,
        new.asset_id,
        new.window_hours,
        new.expires_at,
    )
    with pytest.raises(AccountsError) as err:
        create_grant(session, fixed)
    assert err.value.code == code


def test_bad_plans_are_refused(session: Session) -> None:
    for kwargs, code in (
        ({"name": " ", "channel_ids": []}, "invalid_name"),
        ({"name": "x", "channel_ids": ["nope"]}, "invalid_channel"),
        ({"name": "x", "channel_ids": [], "max_streams": 0}, "invalid_max_streams"),
    ):
        with pytest.raises(AccountsError) as err:
            create_plan(session, **kwargs)  # type: ignore[arg-type]
        assert err.value.code == code
