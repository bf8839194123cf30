"""REST API: /api/v1/webhooks (admins only: an admin user or an admin-scoped key; the
endpoints receive every channel's events)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from mediaplane.accounts import require_admin
from mediaplane.http import ApiError, runtime_dep
from mediaplane.runtime import Runtime

from ._errors import InvalidWebhook, WebhookError, WebhookNotFound
from ._service import (
    EndpointChanges,
    create_endpoint,
    delete_endpoint,
    endpoint_json,
    get_endpoint,
    list_deliveries,
    list_endpoints,
    replay_delivery,
    replay_range,
    rotate_secret,
    update_endpoint,
)

router = APIRouter(prefix="/api/v1", tags=["webhooks"], dependencies=[Depends(require_admin)])
_PATTERNS = Field(max_length=50)


class EndpointJson(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(max_length=2048)
    events: list[str] = _PATTERNS


class EndpointPatchJson(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str | None = Field(default=None, max_length=2048)
    events: list[str] | None = Field(default=None, max_length=50)
    enabled: bool | None = None


class RangeJson(BaseModel):
    model_config = ConfigDict(extra="forbid")
    since: datetime
    until: datetime


def _api_error(exc: WebhookError) -> ApiError:
    status = 404 if isinstance(exc, WebhookNotFound) else 400
    return ApiError(status, exc.code, exc.message)


def _aware(value: datetime, name: str) -> datetime:
    if value.tzinfo is None:
        raise ApiError(400, "invalid_time", f"{name} needs a time zone (e.g. Z).")
    return value


@router.post("/webhooks", status_code=201)
async def create_webhook(body: EndpointJson, rt: Runtime = Depends(runtime_dep)) -> dict[str, Any]:
    """Add an endpoint ``{url, events: ["video.asset.*", …]}``; the answer carries its
    signing ``secret``, shown this once."""

    def run() -> dict[str, Any]:
        with rt.db.session() as s:
            ep = create_endpoint(s, body.url, body.events, rt.settings.webhook_allow)
            return {"data": endpoint_json(ep, with_secret=True)}

    try:
        return await run_in_threadpool(run)  # the URL's host is resolved
    except InvalidWebhook as exc:
        raise _api_error(exc) from None


@router.get("/webhooks")
def list_webhooks(rt: Runtime = Depends(runtime_dep)) -> dict[str, Any]:
    with rt.db.session() as s:
        return {"data": [endpoint_json(e) for e in list_endpoints(s)]}


@router.get("/webhooks/{webhook_id}")
def get_webhook(webhook_id: str, rt: Runtime = Depends(runtime_dep)) -> dict[str, Any]:
    try:
        with rt.db.session() as s:
            return {"data": endpoint_json(get_endpoint(s, webhook_id))}
    except WebhookError as exc:
        raise _api_error(exc) from None


@router.patch("/webhooks/{webhook_id}")
def update_webhook(
    webhook_id: str, body: EndpointPatchJson, rt: Runtime = Depends(runtime_dep)
) -> dict[str, Any]:
    """Change an endpoint's url, events or enabled (re-enabling one a 410 disabled)."""
    changes = EndpointChanges(body.url, body.events, body.enabled)
    try:
        with rt.db.session() as s:
            ep = update_endpoint(s, webhook_id, changes, rt.settings.webhook_allow)
            return {"data": endpoint_json(ep)}
    except WebhookError as exc:
        raise _api_error(exc) from None


@router.delete("/webhooks/{webhook_id}", status_code=204)
def delete_webhook(webhook_id: str, rt: Runtime = Depends(runtime_dep)) -> Response:
    """Delete an endpoint and its delivery log."""
    try:
        with rt.db.session() as s:
            delete_endpoint(s, webhook_id)
    except WebhookError as exc:
        raise _api_error(exc) from None
    return Response(status_code=204)


@router.post("/webhooks/{webhook_id}/rotate-secret")
def rotate_webhook_secret(webhook_id: str, rt: Runtime = Depends(runtime_dep)) -> dict[str, Any]:
    """A new secret (shown once); for 24 h deliveries carry a second ``v1=`` signed with
    the old one."""
    try:
        with rt.db.session() as s:
            return {"data": endpoint_json(rotate_secret(s, webhook_id), with_secret=True)}
    except WebhookError as exc:
        raise _api_error(exc) from None


@router.get("/webhooks/{webhook_id}/deliveries")
def webhook_deliveries(
    webhook_id: str,
    rt: Runtime = Depends(runtime_dep),
    limit: int = Query(50, ge=1, le=500),
    before: datetime | None = None,
) -> dict[str, Any]:
    """The endpoint's delivery log, newest first: request body, response code and start of
    the body, latency, attempts, next attempt."""
    if before is not None:
        before = _aware(before, "before")
    try:
        with rt.db.session() as s:
            found = list_deliveries(s, webhook_id, limit=limit, before=before)
            return {"data": [d.json() for d in found]}
    except WebhookError as exc:
        raise _api_error(exc) from None


@router.post("/webhooks/{webhook_id}/deliveries/{delivery_id}/replay", status_code=201)
def replay_webhook_delivery(
    webhook_id: str, delivery_id: str, rt: Runtime = Depends(runtime_dep)
) -> dict[str, Any]:
    """Send a delivery's event again (the same body and event id) as a new delivery."""
    try:
        with rt.db.session() as s:
            return {"data": replay_delivery(s, webhook_id, delivery_id).json()}
    except WebhookError as exc:
        raise _api_error(exc) from None


@router.post("/webhooks/{webhook_id}/replay", status_code=201)
def replay_webhook_range(
    webhook_id: str, body: RangeJson, rt: Runtime = Depends(runtime_dep)
) -> dict[str, Any]:
    """Replay every delivery created in [since, until) (at most 1000), oldest first."""
    since, until = _aware(body.since, "since"), _aware(body.until, "until")
    try:
        with rt.db.session() as s:
            return {"data": [d.json() for d in replay_range(s, webhook_id, since, until)]}
    except WebhookError as exc:
        raise _api_error(exc) from None
