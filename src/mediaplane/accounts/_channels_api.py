"""REST API for channels: /api/v1/channels and their members."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, ConfigDict, Field

from mediaplane.http import ApiError, runtime_dep
from mediaplane.runtime import Runtime

from ._channels import (
    Channel,
    ChannelMember,
    ChannelRole,
    create_channel,
    delete_channel,
    get_channel,
    list_channels,
    members_of,
    remove_member,
    rename_channel,
    set_member,
)
from ._errors import InvalidAccountInput
from ._models import Scope
from ._principal import Principal, authenticated

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

router = APIRouter(prefix="/api/v1", tags=["channels"])
_read = authenticated(Scope.READ)
_write = authenticated(Scope.WRITE)


class ChannelJson(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(max_length=200)


class MemberJson(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user_id: str = Field(max_length=32)
    role: ChannelRole = ChannelRole.VIEWER


class RemoveMemberJson(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user_id: str = Field(max_length=32)


def _member(m: ChannelMember) -> dict[str, Any]:
    return {"user_id": m.user_id, "role": str(m.role), "created_at": m.created_at.isoformat()}


def _channel(s: Session, c: Channel) -> dict[str, Any]:
    return {
        "id": c.id,
        "name": c.name,
        "created_at": c.created_at.isoformat(),
        "members": [_member(m) for m in members_of(s, c.id)],
    }


def _invalid(exc: InvalidAccountInput) -> ApiError:
    return ApiError(400, exc.code, exc.message)


@router.post("/channels", status_code=201)
def create_channel_route(
    body: ChannelJson,
    principal: Principal = Depends(_write),
    rt: Runtime = Depends(runtime_dep),
) -> dict[str, Any]:
    """Create a channel (creators and admins); the caller becomes its owner."""
    try:
        with rt.db.session() as s:
            return {"data": _channel(s, create_channel(s, principal, body.name))}
    except InvalidAccountInput as exc:
        raise _invalid(exc) from None


@router.get("/channels")
def list_channels_route(
    principal: Principal = Depends(_read), rt: Runtime = Depends(runtime_dep)
) -> dict[str, Any]:
    """The channels the caller is a member of (every channel for admins)."""
    with rt.db.session() as s:
        return {"data": [_channel(s, c) for c in list_channels(s, principal)]}


@router.get("/channels/{channel_id}")
def get_channel_route(
    channel_id: str, principal: Principal = Depends(_read), rt: Runtime = Depends(runtime_dep)
) -> dict[str, Any]:
    with rt.db.session() as s:
        return {"data": _channel(s, get_channel(s, principal, channel_id))}


@router.patch("/channels/{channel_id}")
def update_channel_route(
    channel_id: str,
    body: ChannelJson,
    principal: Principal = Depends(_write),
    rt: Runtime = Depends(runtime_dep),
) -> dict[str, Any]:
    """Rename a channel (its owners and admins)."""
    try:
        with rt.db.session() as s:
            return {"data": _channel(s, rename_channel(s, principal, channel_id, body.name))}
    except InvalidAccountInput as exc:
        raise _invalid(exc) from None


@router.delete("/channels/{channel_id}", status_code=204)
def delete_channel_route(
    channel_id: str, principal: Principal = Depends(_write), rt: Runtime = Depends(runtime_dep)
) -> Response:
    """Delete a channel (its owners and admins); its assets stay, as the install's."""
    with rt.db.session() as s:
        delete_channel(s, principal, channel_id)
    return Response(status_code=204)


@router.post("/channels/{channel_id}/members", status_code=201)
def add_member_route(
    channel_id: str,
    body: MemberJson,
    principal: Principal = Depends(_write),
    rt: Runtime = Depends(runtime_dep),
) -> dict[str, Any]:
    """Add a member with a role, or change a member's role (owners and admins)."""
    try:
        with rt.db.session() as s:
            return {"data": _member(set_member(s, principal, channel_id, body.user_id, body.role))}
    except InvalidAccountInput as exc:
        raise _invalid(exc) from None


@router.delete("/channels/{channel_id}/members", status_code=204)
def remove_member_route(
    channel_id: str,
    body: RemoveMemberJson,
    principal: Principal = Depends(_write),
    rt: Runtime = Depends(runtime_dep),
) -> Response:
    """Remove a member (owners and admins; a member may remove themself)."""
    with rt.db.session() as s:
        remove_member(s, principal, channel_id, body.user_id)
    return Response(status_code=204)
