"""Channels: what creators publish through. A channel has members, each with a role
(``owner`` > ``editor`` > ``viewer``): owners manage the channel and its members, editors
manage its assets, viewers read them. Admins may do everything with every channel.

A channel the caller is no member of does not exist for them (:class:`ChannelNotFound`,
404); a member without the role for an action gets :class:`~mediaplane.errors.Forbidden`
(403 ``insufficient_channel_role``). Deleting a channel keeps its assets: they become the
install's (only admins see them).
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import ForeignKey, String, UniqueConstraint, select
from sqlalchemy.orm import Mapped, mapped_column

from mediaplane.db import Base, str_enum, utcnow
from mediaplane.errors import Forbidden
from mediaplane.errors import NotFound as _HttpNotFound

from ._errors import InvalidAccountInput, NotFound
from ._models import Role, User, new_id

if TYPE_CHECKING:
    from sqlalchemy import Select
    from sqlalchemy.orm import Session

    from ._principal import Principal

#: User roles that may create channels.
CREATOR_ROLES = (Role.CREATOR, Role.ADMIN)


class ChannelRole(enum.StrEnum):
    """A member's role in one channel; each covers the ones after it."""

    OWNER = "owner"
    EDITOR = "editor"
    VIEWER = "viewer"

    def covers(self, required: ChannelRole) -> bool:
        order = list(ChannelRole)
        return order.index(self) <= order.index(required)


class ChannelNotFound(NotFound, _HttpNotFound):
    """No such channel, or one the caller is no member of (404)."""

    code = "not_found"


class Channel(Base):
    __tablename__ = "channels"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200))
    created_by: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ChannelMember(Base):
    __tablename__ = "channel_members"
    __table_args__ = (UniqueConstraint("channel_id", "user_id", name="uq_channel_members"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    channel_id: Mapped[str] = mapped_column(
        ForeignKey("channels.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    role: Mapped[ChannelRole] = mapped_column(str_enum(ChannelRole, 16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


def _name(name: str) -> str:
    name = name.strip()
    if not 1 <= len(name) <= 200:
        raise InvalidAccountInput("A channel's name has 1 to 200 characters.", "invalid_name")
    return name


def _channel_role(value: ChannelRole | str) -> ChannelRole:
    try:
        return ChannelRole(value)
    except ValueError:
        raise InvalidAccountInput(
            f"Unknown channel role {value!r}; use one of {', '.join(ChannelRole)}.",
            "invalid_role",
        ) from None


def member_channel_ids(principal: Principal) -> Select[Any]:
    """A subquery: the ids of the channels ``principal`` is a member of (any role)."""
    return select(ChannelMember.channel_id).where(ChannelMember.user_id == principal.user_id)


def role_in(s: Session, principal: Principal, channel_id: str) -> ChannelRole | None:
    """``principal``'s role in the channel; None when no member (admins have none either)."""
    if principal.user_id is None:
        return None
    return s.scalars(
        select(ChannelMember.role).where(
            ChannelMember.channel_id == channel_id, ChannelMember.user_id == principal.user_id
        )
    ).first()


def check_channel_role(
    s: Session, principal: Principal, channel_id: str, needed: ChannelRole
) -> None:
    """Pass when ``principal`` is an admin or holds ``needed`` (or more) in the channel.

    :raises ChannelNotFound: the caller is no member (the channel is not theirs to see).
    :raises Forbidden: a member with a lesser role (``insufficient_channel_role``).
    """
    if principal.sees_everything:
        if s.get(Channel, channel_id) is None:
            raise ChannelNotFound(f"No channel with id {channel_id!r}.")
        return
    role = role_in(s, principal, channel_id)
    if role is None:
        raise ChannelNotFound(f"No channel with id {channel_id!r}.")
    if not role.covers(needed):
        raise Forbidden(
            f"This needs the {needed} role in the channel; you are a {role}.",
            "insufficient_channel_role",
        )


def get_channel(
    s: Session, principal: Principal, channel_id: str, needed: ChannelRole = ChannelRole.VIEWER
) -> Channel:
    """The channel, checked with :func:`check_channel_role`."""
    check_channel_role(s, principal, channel_id, needed)
    channel = s.get(Channel, channel_id)
    assert channel is not None  # checked above, in this transaction
    return channel


def create_channel(s: Session, principal: Principal, name: str) -> Channel:
    """A new channel whose owner is the caller (a creator or an admin; the install's
    channels have no owner member: admins manage them)."""
    if principal.role not in CREATOR_ROLES:
        raise Forbidden("Only creators and admins create channels.", "insufficient_role")
    channel = Channel(name=_name(name), created_by=principal.user_id)
    s.add(channel)
    s.flush()
    if principal.user_id is not None:
        s.add(
            ChannelMember(channel_id=channel.id, user_id=principal.user_id, role=ChannelRole.OWNER)
        )
        s.flush()
    return channel


def list_channels(s: Session, principal: Principal) -> list[Channel]:
    """The channels the caller may see (every one for admins), oldest first."""
    query = select(Channel).order_by(Channel.created_at, Channel.id)
    if not principal.sees_everything:
        query = query.where(Channel.id.in_(member_channel_ids(principal)))
    return list(s.scalars(query))


def upload_channels(s: Session, principal: Principal) -> list[Channel]:
    """The channels ``principal`` may upload into (editor or owner; every one for admins),
    oldest first."""
    if principal.sees_everything:
        return list_channels(s, principal)
    editable = select(ChannelMember.channel_id).where(
        ChannelMember.user_id == principal.user_id,
        ChannelMember.role.in_([ChannelRole.OWNER, ChannelRole.EDITOR]),
    )
    query = select(Channel).where(Channel.id.in_(editable))
    return list(s.scalars(query.order_by(Channel.created_at, Channel.id)))


def rename_channel(s: Session, principal: Principal, channel_id: str, name: str) -> Channel:
    channel = get_channel(s, principal, channel_id, ChannelRole.OWNER)
    channel.name = _name(name)
    return channel


def delete_channel(s: Session, principal: Principal, channel_id: str) -> None:
    """Delete the channel and its memberships; its assets stay, as the install's."""
    s.delete(get_channel(s, principal, channel_id, ChannelRole.OWNER))


def members_of(s: Session, channel_id: str) -> list[ChannelMember]:
    return list(
        s.scalars(
            select(ChannelMember)
            .where(ChannelMember.channel_id == channel_id)
            .order_by(ChannelMember.created_at, ChannelMember.id)
        )
    )


def set_member(
    s: Session, principal: Principal, channel_id: str, user_id: str, role: ChannelRole | str
) -> ChannelMember:
    """Add a member, or change a member's role (owners and admins only)."""
    role = _channel_role(role)
    check_channel_role(s, principal, channel_id, ChannelRole.OWNER)
    if s.get(User, user_id) is None:
        raise InvalidAccountInput(f"No user with id {user_id!r}.", "invalid_user")
    member = s.scalars(
        select(ChannelMember).where(
            ChannelMember.channel_id == channel_id, ChannelMember.user_id == user_id
        )
    ).first()
    if member is None:
        member = ChannelMember(channel_id=channel_id, user_id=user_id, role=role)
        s.add(member)
    else:
        member.role = role
    s.flush()
    return member


def remove_member(s: Session, principal: Principal, channel_id: str, user_id: str) -> None:
    """Remove a member (owners and admins; any member may leave)."""
    needed = ChannelRole.VIEWER if user_id == principal.user_id else ChannelRole.OWNER
    check_channel_role(s, principal, channel_id, needed)
    member = s.scalars(
        select(ChannelMember).where(
            ChannelMember.channel_id == channel_id, ChannelMember.user_id == user_id
        )
    ).first()
    if member is None:
        raise ChannelNotFound(f"User {user_id!r} is no member of this channel.")
    s.delete(member)


def upload_channel(s: Session, principal: Principal, channel_id: str | None) -> str | None:
    """The channel a new asset of ``principal``'s goes into.

    ``channel_id`` given: it, when the caller is an editor or owner there (or an admin).
    None: the caller's first channel they may upload into; None for admins (the asset is
    the install's).

    :raises Forbidden: ``no_channel``: not an admin and no channel to upload into.
    """
    if channel_id is not None:
        check_channel_role(s, principal, channel_id, ChannelRole.EDITOR)
        return channel_id
    if principal.sees_everything:
        return None
    first = s.scalars(
        select(ChannelMember.channel_id)
        .where(
            ChannelMember.user_id == principal.user_id,
            ChannelMember.role.in_([ChannelRole.OWNER, ChannelRole.EDITOR]),
        )
        .order_by(ChannelMember.created_at, ChannelMember.id)
        .limit(1)
    ).first()
    if first is None:
        raise Forbidden(
            "You have no channel to upload into: create one (POST /api/v1/channels) or ask "
            "a channel's owner to make you an editor.",
            "no_channel",
        )
    return first
