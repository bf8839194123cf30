"""REST API for plans and grants: /api/v1/plans and /api/v1/grants (admins only: the
operator's billing system calls them with an admin-scoped key)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from mediaplane.http import ApiError, runtime_dep
from mediaplane.runtime import Runtime

from ._errors import InvalidAccountInput, NotFound
from ._plans import (
    Grant,
    GrantInput,
    GrantKind,
    Plan,
    create_grant,
    create_plan,
    delete_plan,
    get_grant,
    get_plan,
    list_grants,
    list_plans,
    plan_channel_ids,
    revoke_grant,
    update_plan,
)
from ._principal import require_admin

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

router = APIRouter(prefix="/api/v1", tags=["entitlements"], dependencies=[Depends(require_admin)])
_ID = Field(max_length=32)


class PlanJson(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(max_length=200)
    channel_ids: list[str] = Field(default_factory=list, max_length=1000)
    max_streams: int | None = None


class PlanPatchJson(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, max_length=200)
    channel_ids: list[str] | None = Field(default=None, max_length=1000)
    max_streams: int | None = None


class GrantJson(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user_id: str = _ID
    kind: GrantKind
    plan_id: str | None = Field(default=None, max_length=32)
    asset_id: str | None = Field(default=None, max_length=32)
    window_hours: int | None = None
    expires_at: datetime | None = None


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def plan_json(s: Session, plan: Plan) -> dict[str, Any]:
    """The API shape of a plan."""
    return {
        "id": plan.id,
        "name": plan.name,
        "channel_ids": plan_channel_ids(s, plan.id),
        "max_streams": plan.max_streams,
        "created_at": plan.created_at.isoformat(),
    }


def grant_json(grant: Grant) -> dict[str, Any]:
    """The API shape of a grant."""
    return {
        "id": grant.id,
        "user_id": grant.user_id,
        "kind": str(grant.kind),
        "plan_id": grant.plan_id,
        "asset_id": grant.asset_id,
        "window_hours": grant.window_hours,
        "expires_at": _iso(grant.expires_at),
        "started_at": _iso(grant.started_at),
        "created_at": grant.created_at.isoformat(),
        "revoked_at": _iso(grant.revoked_at),
    }


def _invalid(exc: InvalidAccountInput) -> ApiError:
    return ApiError(400, exc.code, exc.message)


def _missing(exc: NotFound) -> ApiError:
    return ApiError(404, exc.code, exc.message)


@router.post("/plans", status_code=201)
def create_plan_route(body: PlanJson, rt: Runtime = Depends(runtime_dep)) -> dict[str, Any]:
    """Create a plan ``{name, channel_ids, max_streams}`` (max_streams null: no limit)."""
    try:
        with rt.db.session() as s:
            plan = create_plan(s, body.name, body.channel_ids, body.max_streams)
            return {"data": plan_json(s, plan)}
    except InvalidAccountInput as exc:
        raise _invalid(exc) from None


@router.get("/plans")
def list_plans_route(rt: Runtime = Depends(runtime_dep)) -> dict[str, Any]:
    with rt.db.session() as s:
        return {"data": [plan_json(s, p) for p in list_plans(s)]}


@router.get("/plans/{plan_id}")
def get_plan_route(plan_id: str, rt: Runtime = Depends(runtime_dep)) -> dict[str, Any]:
    try:
        with rt.db.session() as s:
            return {"data": plan_json(s, get_plan(s, plan_id))}
    except NotFound as exc:
        raise _missing(exc) from None


@router.patch("/plans/{plan_id}")
def update_plan_route(
    plan_id: str, body: PlanPatchJson, rt: Runtime = Depends(runtime_dep)
) -> dict[str, Any]:
    """Change a plan's name, channels (the list replaces them) or max_streams."""
    changes: dict[str, Any] = {"name": body.name, "channel_ids": body.channel_ids}
    if "max_streams" in body.model_fields_set:
        changes["max_streams"] = body.max_streams
    try:
        with rt.db.session() as s:
            return {"data": plan_json(s, update_plan(s, plan_id, **changes))}
    except InvalidAccountInput as exc:
        raise _invalid(exc) from None
    except NotFound as exc:
        raise _missing(exc) from None


@router.delete("/plans/{plan_id}", status_code=204)
def delete_plan_route(plan_id: str, rt: Runtime = Depends(runtime_dep)) -> Response:
    """Delete a plan and its subscriptions."""
    try:
        with rt.db.session() as s:
            delete_plan(s, plan_id)
    except NotFound as exc:
        raise _missing(exc) from None
    return Response(status_code=204)


@router.post("/grants", status_code=201)
def create_grant_route(body: GrantJson, rt: Runtime = Depends(runtime_dep)) -> dict[str, Any]:
    """Grant a user a ``subscription`` (plan_id, expires_at?), a ``rental`` (asset_id,
    window_hours?: the window starts at the first play) or a ``purchase`` (asset_id)."""
    new = GrantInput(
        body.user_id, body.kind, body.plan_id, body.asset_id, body.window_hours, body.expires_at
    )
    try:
        with rt.db.session() as s:
            return {"data": grant_json(create_grant(s, new))}
    except InvalidAccountInput as exc:
        raise _invalid(exc) from None


@router.get("/grants")
def list_grants_route(
    rt: Runtime = Depends(runtime_dep),
    user_id: str | None = Query(None, max_length=32),
    include_revoked: bool = False,
) -> dict[str, Any]:
    """Grants, newest first (only one user's with ``user_id``)."""
    with rt.db.session() as s:
        found = list_grants(s, user_id=user_id, include_revoked=include_revoked)
        return {"data": [grant_json(g) for g in found]}


@router.get("/grants/{grant_id}")
def get_grant_route(grant_id: str, rt: Runtime = Depends(runtime_dep)) -> dict[str, Any]:
    try:
        with rt.db.session() as s:
            return {"data": grant_json(get_grant(s, grant_id))}
    except NotFound as exc:
        raise _missing(exc) from None


@router.delete("/grants/{grant_id}", status_code=204)
def revoke_grant_route(grant_id: str, rt: Runtime = Depends(runtime_dep)) -> Response:
    """Revoke a grant (playback stops within a few seconds)."""
    try:
        with rt.db.session() as s:
            revoke_grant(s, grant_id)
    except NotFound as exc:
        raise _missing(exc) from None
    return Response(status_code=204)
