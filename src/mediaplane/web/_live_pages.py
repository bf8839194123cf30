"""The studio's live page: a creator's live streams, a form to make one, and for each the
publish settings (RTMP and SRT URLs, the stream key hidden until revealed, the OBS settings
to copy), its status and health figures refreshed every few seconds (htmx polling a
partial), and a player for it.

Access is the API's (:mod:`mediaplane.live`): a stream of a channel the signed-in user is a
member of; its key only for the channel's editors and owners. Another user's stream answers
403 (the same as a stream that does not exist: no way to tell them apart).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from mediaplane.accounts import AccountsError, User, session_user, user_principal
from mediaplane.errors import Forbidden
from mediaplane.http import runtime_dep
from mediaplane.live import (
    LatencyMode,
    LiveStreamNotFound,
    create_live_stream,
    live_stream_view,
    live_stream_views,
)
from mediaplane.runtime import Runtime

from ._account_pages import BadForm, checked_form, page, see_other
from ._realtime_pages import realtime_panel

router = APIRouter(include_in_schema=False)
#: How often the page refreshes a stream's status and health (seconds).
POLL_SECONDS = 2


def _publish(rt: Runtime, request: Request) -> dict[str, str]:
    """Where publishers connect: the public URL's host (else the request's), the ports."""
    s = rt.settings
    host = urlsplit(s.effective_public_url).hostname or request.url.hostname or "HOST"
    if ":" in host:
        host = f"[{host}]"
    return {"rtmp": f"rtmp://{host}:{s.rtmp_port}/live", "srt": f"srt://{host}:{s.srt_port}"}


def _signin(next_path: str) -> Response:
    return see_other("/signin?next=" + quote(next_path))


def _list(rt: Runtime, user: User) -> dict[str, Any]:
    streams, total = live_stream_views(rt, user_principal(user), limit=100, page=1)
    return {"user": user, "streams": streams, "total": total}


@router.get("/studio/live", response_class=HTMLResponse)
def live_streams_page(request: Request, rt: Runtime = Depends(runtime_dep)) -> Response:
    user = session_user(request)
    if user is None:
        return _signin("/studio/live")
    return page(request, "studio_live.html", _list(rt, user))


@router.post("/studio/live", response_class=HTMLResponse)
async def new_live_stream(request: Request, rt: Runtime = Depends(runtime_dep)) -> Response:
    user = await run_in_threadpool(session_user, request)
    if user is None:
        return _signin("/studio/live")
    try:
        form = await checked_form(request)
    except BadForm as exc:
        ctx = await run_in_threadpool(_list, rt, user)
        return page(request, "studio_live.html", {**ctx, "error": exc.message}, exc.status)
    mode = LatencyMode.LOW if form.get("latency_mode") == "low" else LatencyMode.STANDARD

    def work() -> dict[str, Any]:
        return create_live_stream(
            rt, user_principal(user), latency_mode=mode, record=form.get("record") == "on"
        )

    try:
        stream = await run_in_threadpool(work)
    except (AccountsError, Forbidden) as exc:
        ctx = await run_in_threadpool(_list, rt, user)
        status = 403 if isinstance(exc, Forbidden) else 400
        return page(request, "studio_live.html", {**ctx, "error": str(exc)}, status)
    return see_other(f"/studio/live/{stream['id']}")


def _one(rt: Runtime, request: Request, live_stream_id: str) -> tuple[User | None, Any]:
    user = session_user(request)
    if user is None:
        return None, None
    try:
        stream = live_stream_view(rt, user_principal(user), live_stream_id)
    except LiveStreamNotFound:
        stream = None
    return user, stream


def _not_yours(request: Request) -> Response:
    return page(
        request,
        "notice.html",
        {"title": "Not your live stream", "message": "This live stream is not one of yours."},
        403,
    )


@router.get("/studio/live/{live_stream_id}", response_class=HTMLResponse)
def live_stream_page(
    live_stream_id: str, request: Request, rt: Runtime = Depends(runtime_dep)
) -> Response:
    user, stream = _one(rt, request, live_stream_id)
    if user is None:
        return _signin(f"/studio/live/{live_stream_id}")
    if stream is None:
        return _not_yours(request)
    ctx = {
        "user": user,
        "s": stream,
        "publish": _publish(rt, request),
        "poll": POLL_SECONDS,
        "realtime": realtime_panel(rt, request, live_stream_id=live_stream_id),
    }
    return page(request, "studio_live_stream.html", ctx)


@router.get("/_partials/studio/live/{live_stream_id}", response_class=HTMLResponse)
def live_stream_partial(
    live_stream_id: str, request: Request, rt: Runtime = Depends(runtime_dep)
) -> Response:
    user, stream = _one(rt, request, live_stream_id)
    if user is None:
        return Response(status_code=401, headers={"Cache-Control": "no-store"})
    if stream is None:
        return Response(status_code=403, headers={"Cache-Control": "no-store"})
    return page(request, "_studio_live_health.html", {"s": stream, "poll": POLL_SECONDS})
