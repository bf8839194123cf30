"""The admin page for webhooks: every endpoint, its recent deliveries (status, response
code, latency, attempts, next attempt) and a replay button per delivery (a CSRF form).
Each action calls one webhooks function, like the API (/api/v1/webhooks)."""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from mediaplane.http import runtime_dep
from mediaplane.runtime import Runtime
from mediaplane.webhooks import WebhookNotFound, list_deliveries, list_endpoints, replay_delivery

from ._account_pages import see_other
from ._admin_pages import ADMIN_NAV, NotAdmin, _admin_form, _problem, admin_page, admin_user

log = structlog.get_logger("mediaplane.web.webhooks")
router = APIRouter(prefix="/admin", include_in_schema=False)
ADMIN_NAV.append(("/admin/webhooks", "Webhooks"))
#: Deliveries shown per endpoint (the API pages further back).
SHOWN = 20


def _context(rt: Runtime) -> dict[str, Any]:
    with rt.db.session() as s:
        endpoints = [
            {
                "id": ep.id,
                "url": ep.url,
                "events": ep.events,
                "enabled": ep.enabled,
                "disabled_reason": ep.disabled_reason,
                "deliveries": list_deliveries(s, ep.id, limit=SHOWN),
            }
            for ep in list_endpoints(s)
        ]
        s.expunge_all()
    return {"endpoints": endpoints}


@router.get("/webhooks", response_class=HTMLResponse)
def webhooks_page(request: Request, rt: Runtime = Depends(runtime_dep)) -> Response:
    try:
        admin_user(request)
    except NotAdmin as exc:
        return exc.response
    return admin_page(request, "admin_webhooks.html", _context(rt))


@router.post("/webhooks/{endpoint_id}/deliveries/{delivery_id}/replay", response_class=HTMLResponse)
async def replay_page(
    endpoint_id: str, delivery_id: str, request: Request, rt: Runtime = Depends(runtime_dep)
) -> Response:
    try:
        admin, _ = await _admin_form(request)
    except NotAdmin as exc:
        return exc.response

    def work() -> str:
        with rt.db.session() as s:
            return replay_delivery(s, endpoint_id, delivery_id).id

    try:
        new_id = await run_in_threadpool(work)
    except WebhookNotFound:
        return _problem(request, "There is no such delivery.", 404)
    log.info("admin.webhook_replayed", delivery_id=delivery_id, replay_id=new_id, by=admin.id)
    return see_other("/admin/webhooks")
