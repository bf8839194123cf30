"""Plans and grants: what an account is entitled to, as the operator's billing says.

A :class:`Plan` covers channels (``plan_channels``) and allows ``max_streams`` concurrent
streams per account (None: no limit). A :class:`Grant` gives one user a ``subscription``
to a plan (until ``expires_at``, or open-ended), a ``rental`` of an asset (a window of
``window_hours`` from the first play, recorded in ``started_at``) or a ``purchase`` of an
asset. There is no payment processor: admins (or the operator's billing system, with an
admin key) create grants. Revoking a grant keeps its row (``revoked_at``).

:func:`account_facts` is what the entitlement decision is fed with
(:class:`~._entitle.AccountFacts`); :func:`record_rental_start` writes a rental's first
play, once.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import ForeignKey, Integer, String, UniqueConstraint, delete, select, update
from sqlalchemy.orm import Mapped, mapped_column

from mediaplane.db import Base, str_enum, utcnow

from ._channels import Channel, ChannelMember
from ._entitle import AccountFacts, RentalFact, SubscriptionFact
from ._errors import InvalidAccountInput, NotFound
from ._models import Role, User, new_id

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

#: The most concurrent streams a plan may name, and the longest rental window (a year).
MAX_STREAMS_LIMIT = 1000
MAX_WINDOW_HOURS = 24 * 366


class GrantKind(enum.StrEnum):
    SUBSCRIPTION = "subscription"
    RENTAL = "rental"
    PURCHASE = "purchase"


class Plan(Base):
    __tablename__ = "plans"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200))
    #: Concurrent streams allowed per account; None: no limit.
    max_streams: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class PlanChannel(Base):
    """A channel a plan covers."""

    __tablename__ = "plan_channels"
    __table_args__ = (UniqueConstraint("plan_id", "channel_id", name="uq_plan_channels"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    plan_id: Mapped[str] = mapped_column(ForeignKey("plans.id", ondelete="CASCADE"), index=True)
    channel_id: Mapped[str] = mapped_column(
        ForeignKey("channels.id", ondelete="CASCADE"), index=True
    )


class Grant(Base):
    """One entitlement of one user. ``asset_id`` names a catalog asset without a foreign
    key (accounts sit below the catalog); a deleted asset's grants simply match nothing."""

    __tablename__ = "grants"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    kind: Mapped[GrantKind] = mapped_column(str_enum(GrantKind, 16))
    plan_id: Mapped[str | None] = mapped_column(
        ForeignKey("plans.id", ondelete="CASCADE"), index=True
    )
    asset_id: Mapped[str | None] = mapped_column(String(32), index=True)
    window_hours: Mapped[int | None] = mapped_column(Integer)
    expires_at: Mapped[datetime | None] = mapped_column()
    started_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column()


def _aware(value: datetime | None) -> datetime | None:
    """Stored times come back naive from SQLite: they are UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


# --- plans --------------------------------------------------------------------------------


def _plan_name(name: str) -> str:
    name = name.strip()
    if not 1 <= len(name) <= 200:
        raise InvalidAccountInput("A plan's name has 1 to 200 characters.", "invalid_name")
    return name


def _max_streams(value: int | None) -> int | None:
    if value is not None and not 1 <= value <= MAX_STREAMS_LIMIT:
        raise InvalidAccountInput(
            f"max_streams is 1 to {MAX_STREAMS_LIMIT}, or null for no limit.",
            "invalid_max_streams",
        )
    return value


def _set_channels(s: Session, plan: Plan, channel_ids: list[str]) -> None:
    wanted = list(dict.fromkeys(channel_ids))
    known = set(s.scalars(select(Channel.id).where(Channel.id.in_(wanted))))
    unknown = [c for c in wanted if c not in known]
    if unknown:
        raise InvalidAccountInput(f"No channel with id {unknown[0]!r}.", "invalid_channel")
    s.execute(delete(PlanChannel).where(PlanChannel.plan_id == plan.id))
    s.add_all(PlanChannel(plan_id=plan.id, channel_id=c) for c in wanted)
    s.flush()


def plan_channel_ids(s: Session, plan_id: str) -> list[str]:
    return list(
        s.scalars(
            select(PlanChannel.channel_id)
            .where(PlanChannel.plan_id == plan_id)
            .order_by(PlanChannel.channel_id)
        )
    )


def create_plan(
    s: Session, name: str, channel_ids: list[str], max_streams: int | None = None
) -> Plan:
    """A new plan covering ``channel_ids`` (each must exist)."""
    plan = Plan(name=_plan_name(name), max_streams=_max_streams(max_streams))
    s.add(plan)
    s.flush()
    _set_channels(s, plan, channel_ids)
    return plan


def get_plan(s: Session, plan_id: str) -> Plan:
    plan = s.get(Plan, plan_id)
    if plan is None:
        raise NotFound(f"No plan with id {plan_id!r}.")
    return plan


def list_plans(s: Session) -> list[Plan]:
    return list(s.scalars(select(Plan).order_by(Plan.created_at, Plan.id)))


_UNSET: Any = object()


def update_plan(
    s: Session,
    plan_id: str,
    *,
    name: str | None = None,
    channel_ids: list[str] | None = None,
    max_streams: int | None = _UNSET,
) -> Plan:
    """Change a plan's name, channels (replaced) and/or limit (``None``: no limit)."""
    plan = get_plan(s, plan_id)
    if name is not None:
        plan.name = _plan_name(name)
    if max_streams is not _UNSET:
        plan.max_streams = _max_streams(max_streams)
    if channel_ids is not None:
        _set_channels(s, plan, channel_ids)
    s.flush()
    return plan


def delete_plan(s: Session, plan_id: str) -> None:
    """Delete a plan: its channels and its subscriptions go with it."""
    plan = get_plan(s, plan_id)
    s.execute(delete(Grant).where(Grant.plan_id == plan_id))
    s.execute(delete(PlanChannel).where(PlanChannel.plan_id == plan_id))
    s.delete(plan)


# --- grants -------------------------------------------------------------------------------


@dataclass(frozen=True)
class GrantInput:
    """A grant to create: ``plan_id`` for a subscription, ``asset_id`` for the others."""

    user_id: str
    kind: GrantKind
    plan_id: str | None = None
    asset_id: str | None = None
    window_hours: int | None = None
    expires_at: datetime | None = None


def _check_grant(s: Session, new: GrantInput) -> None:
    if s.get(User, new.user_id) is None:
        raise InvalidAccountInput(f"No user with id {new.user_id!r}.", "invalid_user")
    if new.kind is GrantKind.SUBSCRIPTION:
        if new.plan_id is None or new.asset_id is not None or new.window_hours is not None:
            raise InvalidAccountInput(
                "A subscription names plan_id (and optionally expires_at), no asset.",
                "invalid_grant",
            )
        if s.get(Plan, new.plan_id) is None:
            raise InvalidAccountInput(f"No plan with id {new.plan_id!r}.", "invalid_plan")
        return
    if new.asset_id is None or new.plan_id is not None or new.expires_at is not None:
        raise InvalidAccountInput(
            f"A {new.kind} names asset_id, no plan_id or expires_at.", "invalid_grant"
        )
    if new.kind is GrantKind.PURCHASE and new.window_hours is not None:
        raise InvalidAccountInput("A purchase has no window_hours.", "invalid_grant")
    if new.window_hours is not None and not 1 <= new.window_hours <= MAX_WINDOW_HOURS:
        raise InvalidAccountInput(
            f"window_hours is 1 to {MAX_WINDOW_HOURS}.", "invalid_window_hours"
        )


def create_grant(s: Session, new: GrantInput) -> Grant:
    """Record an entitlement (the asset id is not checked here: the catalog's caller
    checks it)."""
    _check_grant(s, new)
    expires = new.expires_at
    if expires is not None and expires.tzinfo is None:
        raise InvalidAccountInput("expires_at needs a time zone, like Z.", "invalid_grant")
    grant = Grant(
        user_id=new.user_id,
        kind=new.kind,
        plan_id=new.plan_id,
        asset_id=new.asset_id,
        window_hours=new.window_hours,
        expires_at=expires.astimezone(UTC) if expires is not None else None,
    )
    s.add(grant)
    s.flush()
    return grant


def get_grant(s: Session, grant_id: str) -> Grant:
    grant = s.get(Grant, grant_id)
    if grant is None:
        raise NotFound(f"No grant with id {grant_id!r}.")
    return grant


def list_grants(
    s: Session, *, user_id: str | None = None, include_revoked: bool = False, limit: int = 500
) -> list[Grant]:
    """Grants, newest first (only ``user_id``'s when given)."""
    q = select(Grant)
    if user_id is not None:
        q = q.where(Grant.user_id == user_id)
    if not include_revoked:
        q = q.where(Grant.revoked_at.is_(None))
    return list(s.scalars(q.order_by(Grant.created_at.desc(), Grant.id).limit(limit)))


def revoke_grant(s: Session, grant_id: str) -> Grant:
    """Revoke a grant: playback stops within the origin's cache time (revoking twice is fine)."""
    grant = get_grant(s, grant_id)
    if grant.revoked_at is None:
        grant.revoked_at = utcnow()
    return grant


def record_rental_start(s: Session, grant_id: str, now: datetime) -> bool:
    """Start a rental's window at its first play; False when it had started already (the
    first writer wins, so two first plays at once record one start)."""
    result = s.execute(
        update(Grant).where(Grant.id == grant_id, Grant.started_at.is_(None)).values(started_at=now)
    )
    return bool(getattr(result, "rowcount", 0))


# --- facts for the decision -----------------------------------------------------------------


def _is_member(s: Session, user: User, channel_id: str | None) -> bool:
    if user.role is Role.ADMIN:
        return True
    if channel_id is None:
        return False
    found = s.scalars(
        select(ChannelMember.id).where(
            ChannelMember.channel_id == channel_id, ChannelMember.user_id == user.id
        )
    ).first()
    return found is not None


def account_facts(
    s: Session, user_id: str | None, asset_id: str, channel_id: str | None
) -> AccountFacts:
    """What ``user_id``'s account holds for the asset (in ``channel_id``): membership, live
    grants (not revoked; expiry is judged by the decision, at its own time). A missing or
    disabled user holds nothing."""
    user = s.get(User, user_id) if user_id else None
    if user is None or user.disabled:
        return AccountFacts()
    grants = list(
        s.scalars(
            select(Grant).where(
                Grant.user_id == user.id,
                Grant.revoked_at.is_(None),
                (Grant.asset_id == asset_id) | (Grant.kind == GrantKind.SUBSCRIPTION),
            )
        )
    )
    plans: dict[str, Plan] = {}
    subscribed = [g.plan_id for g in grants if g.kind is GrantKind.SUBSCRIPTION and g.plan_id]
    if subscribed and channel_id is not None:
        covering = select(PlanChannel.plan_id).where(PlanChannel.channel_id == channel_id)
        plans = {
            p.id: p
            for p in s.scalars(select(Plan).where(Plan.id.in_(subscribed), Plan.id.in_(covering)))
        }
    subs = tuple(
        SubscriptionFact(g.plan_id, _aware(g.expires_at), plans[g.plan_id].max_streams)
        for g in grants
        if g.kind is GrantKind.SUBSCRIPTION and g.plan_id in plans
    )
    rentals = tuple(
        RentalFact(g.id, g.window_hours, _aware(g.started_at))
        for g in grants
        if g.kind is GrantKind.RENTAL
    )
    purchased = any(g.kind is GrantKind.PURCHASE for g in grants)
    return AccountFacts(_is_member(s, user, channel_id), subs, rentals, purchased)
