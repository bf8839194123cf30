"""Routes: ``POST /api/v1/beacons`` (players, no authentication: untrusted input),
``GET /api/v1/data/views`` (the views of an asset, for whoever may read the asset) and
``GET /api/v1/data/realtime`` (who watches an asset or a live stream now) and
``GET /api/v1/data/metrics/{metric}`` (a QoE metric's breakdown over the assets the caller
may read, or one of them)."""

from __future__ import annotations

import csv
import functools
import io
import math
from datetime import date
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from mediaplane.accounts import Principal, Scope, authenticated
from mediaplane.catalog import (
    Asset,
    AssetAction,
    PlaybackId,
    authorized_asset,
    viewer_territory,
    visible_to,
)
from mediaplane.http import ApiError, read_small_body, runtime_dep
from mediaplane.runtime import Runtime

from ._errors import InvalidBeacon, LakeBusy, RateLimited
from ._lake import lake_of
from ._metrics import METRICS, MetricsQuery, MetricsQueryError, ViewScope, breakdown
from ._realtime import realtime_view
from ._service import beacon_intake
from ._views import list_views

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["analytics"])
_read = authenticated(Scope.READ)


@router.post("/beacons", status_code=202)
async def post_beacons(request: Request, rt: Runtime = Depends(runtime_dep)) -> JSONResponse:
    """A batch of QoE events from a player: ``{view_id, playback_id, player: {name,
    version}, viewer_id?, sent_at?, events: [{id, type, ts, …}]}`` (any content type:
    ``navigator.sendBeacon`` sends ``text/plain``). Each bad event is rejected alone and
    counted; a replayed event counts as a duplicate."""
    body = await read_small_body(request, rt.settings.beacon_max_bytes)
    address = request.client.host if request.client else None
    try:
        receipt = beacon_intake(rt).take(
            body,
            address,
            request.headers.get("user-agent"),
            viewer_territory(request, rt.settings),
        )
    except InvalidBeacon as exc:
        raise ApiError(400, "invalid_beacon", str(exc)) from None
    except RateLimited as exc:
        wait = str(max(1, math.ceil(exc.retry_after)))
        raise ApiError(429, "rate_limited", str(exc), headers={"Retry-After": wait}) from None
    except LakeBusy as exc:
        raise ApiError(503, "analytics_busy", str(exc), headers={"Retry-After": "5"}) from None
    return JSONResponse({"data": receipt.to_api()}, status_code=202)


@router.get("/data/views")
async def get_views(
    rt: Runtime = Depends(runtime_dep),
    principal: Principal = Depends(_read),
    asset_id: str = Query(max_length=64),
    limit: int = Query(default=100, ge=1, le=1000),
    since: date | None = Query(default=None, alias="from"),
    until: date | None = Query(default=None, alias="to"),
) -> dict[str, Any]:
    """The asset's view sessions that have landed in the lake, newest first, with their QoE
    fields (``player``, ``startup_time_ms``, ``rebuffer_count``, ``rebuffer_ratio``,
    ``watch_time_s``, ``errors``, ``average_bitrate``, ``renditions``, CMCD counts).
    ``from``/``to`` (``YYYY-MM-DD``, UTC, both included): only those days' events, and only
    their partitions of the lake are read."""
    if since is not None and until is not None and until < since:
        raise ApiError(400, "invalid_request", "'to' is before 'from'.")
    scope = await run_in_threadpool(metrics_scope, rt, principal, asset_id)
    views = await run_in_threadpool(
        functools.partial(
            list_views, lake_of(rt), list(scope.playback_ids), limit, since=since, until=until
        )
    )
    return {"data": views}


@router.get("/data/realtime")
async def get_realtime(
    rt: Runtime = Depends(runtime_dep),
    principal: Principal = Depends(_read),
    asset_id: str | None = Query(default=None, max_length=64),
    live_stream_id: str | None = Query(default=None, max_length=64),
) -> dict[str, Any]:
    """Concurrent viewers of an asset (``asset_id``) or a live stream (``live_stream_id``)
    now, and their live QoE: ``viewers``, ``rebuffering_viewers``, ``average_bitrate``
    (bits/s), ``errors_last_minute``; ``window_s``: a view counts while its newest beacon is
    younger than this. Beacons count as they arrive (not once flushed to the lake)."""
    if (asset_id is None) == (live_stream_id is None):
        raise ApiError(400, "invalid_request", "Give one of asset_id and live_stream_id.")
    figures = await run_in_threadpool(
        realtime_view, rt, principal, asset_id=asset_id, live_stream_id=live_stream_id
    )
    return {"data": figures}


def metrics_scope(rt: Runtime, principal: Principal, asset_id: str | None) -> ViewScope:
    """The playback ids (and their assets) whose views ``principal`` may see: one asset's
    (404 when they may not read it), or every asset's they may read (blocking)."""
    with rt.db.session() as s:
        if asset_id is not None:
            asset = authorized_asset(s, principal, asset_id, AssetAction.READ)
            pids = [p.id for p in asset.playback_ids]
            return ViewScope(pids, [asset.id] * len(pids))
        rows = s.execute(
            select(PlaybackId.id, PlaybackId.asset_id)
            .join(Asset, Asset.id == PlaybackId.asset_id)
            .where(visible_to(principal))
        ).all()
        return ViewScope([r[0] for r in rows], [r[1] for r in rows])


def metrics_csv(group_by: str | None, names: list[str], rows: list[dict[str, Any]]) -> str:
    """A breakdown as CSV: the group, then each metric (and ``views`` when not among them)."""
    cols = names if "views" in names else [*names, "views"]
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow([group_by or "group", *cols])
    for r in rows:
        w.writerow(
            [
                "" if r["group"] is None else r["group"],
                *("" if r[c] is None else r[c] for c in cols),
            ]
        )
    return out.getvalue()


@router.get("/data/metrics/{metric}", response_model=None)
async def get_metric(
    metric: str,
    rt: Runtime = Depends(runtime_dep),
    principal: Principal = Depends(_read),
    group_by: str | None = Query(default=None, max_length=32),
    asset_id: str | None = Query(default=None, max_length=64),
    start: str | None = Query(default=None, alias="from", max_length=40),
    end: str | None = Query(default=None, alias="to", max_length=40),
    interval: str | None = Query(default=None, max_length=8),
    format: Literal["json", "csv"] = "json",
) -> dict[str, Any] | Response:
    """One QoE metric of the views that started in ``[from, to)`` (ISO dates or times, UTC;
    default: the last 7 days), over the assets the caller may read or ``asset_id``'s,
    overall or grouped by ``player``, ``browser``, ``os``, ``rendition``, ``asset``,
    ``date``, ``hour`` or ``time`` (with ``interval=hour|day``: every bucket listed).
    Each row: ``group``, ``value``, ``views``. ``format=csv``: the same rows as CSV.
    Metrics and their definitions: :mod:`mediaplane.analytics._metrics`."""
    if metric not in METRICS:
        raise ApiError(
            400, "unknown_metric", f"Unknown metric {metric!r}: one of {', '.join(METRICS)}."
        )
    try:
        q = MetricsQuery.parse(start, end, group_by, interval)
    except MetricsQueryError as exc:
        raise ApiError(400, "invalid_query", str(exc)) from None
    scope = await run_in_threadpool(metrics_scope, rt, principal, asset_id)
    rows = await run_in_threadpool(breakdown, lake_of(rt), scope, q, [metric])
    label = "time" if q.is_time else q.group_by
    if format == "csv":
        body = metrics_csv(label, [metric], rows)
        name = f"{metric}-by-{label or 'all'}.csv"
        return Response(
            body,
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )
    m = METRICS[metric]
    return {
        "data": {
            "metric": metric,
            "unit": m.unit,
            "definition": m.definition,
            "group_by": group_by,
            "interval": q.interval,
            "from": q.start.isoformat() + "Z",
            "to": q.end.isoformat() + "Z",
            "rows": [{"group": r["group"], "value": r[metric], "views": r["views"]} for r in rows],
        }
    }
