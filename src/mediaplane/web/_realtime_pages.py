"""The real-time panel of the watch page (for whoever may read the asset) and of the studio
live page: concurrent viewers and live QoE (:func:`mediaplane.analytics.realtime_view`),
refreshed every :data:`POLL_SECONDS` by htmx polling a partial."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from mediaplane.accounts import session_user, user_principal
from mediaplane.analytics import realtime_view
from mediaplane.catalog import AssetNotFound
from mediaplane.http import runtime_dep
from mediaplane.live import LiveStreamNotFound
from mediaplane.runtime import Runtime

router = APIRouter(include_in_schema=False)
# its own (the pages' templates module imports this one: the watch page shows the panel)
_templates = Jinja2Templates(directory=str(Path(__file__).with_name("templates")))
#: How often the panel refreshes (seconds): a viewer shows within this plus the snippet's
#: flush (2 s) of starting.
POLL_SECONDS = 3
_NO_STORE = {"Cache-Control": "no-store"}


def realtime_panel(
    rt: Runtime, request: Request, *, asset_id: str | None = None, live_stream_id: str | None = None
) -> dict[str, Any] | None:
    """The panel's context (``realtime`` of the template) for the session's user, or None
    when they may not see it."""
    user = session_user(request)
    if user is None:
        return None
    try:
        figures = realtime_view(
            rt, user_principal(user), asset_id=asset_id, live_stream_id=live_stream_id
        )
    except (AssetNotFound, LiveStreamNotFound):
        return None
    subject = {"asset_id": asset_id} if asset_id is not None else {"live_stream_id": live_stream_id}
    return {"figures": figures, "query": urlencode(subject), "poll": POLL_SECONDS}


@router.get("/_partials/realtime", response_class=HTMLResponse)
def realtime_partial(
    request: Request,
    asset_id: str | None = Query(default=None, max_length=64),
    live_stream_id: str | None = Query(default=None, max_length=64),
    rt: Runtime = Depends(runtime_dep),
) -> Response:
    if (asset_id is None) == (live_stream_id is None):
        return Response(status_code=400, headers=_NO_STORE)
    ctx = realtime_panel(rt, request, asset_id=asset_id, live_stream_id=live_stream_id)
    if ctx is None:
        status = 401 if session_user(request) is None else 404
        return Response(status_code=status, headers=_NO_STORE)
    return _templates.TemplateResponse(
        request, "_realtime.html", {"realtime": ctx}, headers=_NO_STORE
    )
