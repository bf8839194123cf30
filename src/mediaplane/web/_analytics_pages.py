"""The analytics dashboards: the QoE of every asset the signed-in user may read (admins:
all of them; a creator: their channels'), or of one asset, over a date range: headline
numbers, uPlot charts over time, and breakdowns by asset, player, browser, OS,
rendition, country and CDN, each table exportable as CSV; and the data-quality gate's
latest result (the last ``analytics.build`` job, the last ``analytics.quality_failed``
event).

The numbers are :mod:`mediaplane.analytics._metrics`' (the same as
``GET /api/v1/data/metrics/{metric}``): the views are computed once per page from the
range's lake partitions, then grouped for each table.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import HTMLResponse
from sqlalchemy import select

from mediaplane.accounts import User, session_user, user_principal
from mediaplane.analytics import (
    METRICS,
    Breakdowns,
    BuildAnalytics,
    Lake,
    MetricsQuery,
    MetricsQueryError,
    ViewScope,
    lake_of,
    metrics_csv,
    metrics_scope,
    warehouse_path,
)
from mediaplane.catalog import Asset, AssetNotFound
from mediaplane.events import EventType, OutboxRow
from mediaplane.http import runtime_dep
from mediaplane.jobs import Job, JobState
from mediaplane.runtime import Runtime

from ._account_pages import page, see_other
from ._admin_pages import ADMIN_NAV

router = APIRouter(include_in_schema=False)
ADMIN_NAV.append(("/analytics", "Analytics"))

#: The breakdown tables: group_by → heading (the overview adds "asset").
TABLES = {
    "asset": "By asset",
    "player": "By player",
    "browser": "By browser",
    "os": "By operating system",
    "rendition": "By rendition (played longest)",
    "country": "By country",
    "cdn": "By CDN (host of the media)",
}
#: Table columns: metric → (heading, how it is shown).
COLUMNS: dict[str, tuple[str, str]] = {
    "views": ("Views", "int"),
    "unique_viewers": ("Viewers", "int"),
    "watch_time": ("Watch time", "duration"),
    "startup_time_p50": ("Startup p50", "ms"),
    "startup_time_p95": ("Startup p95", "ms"),
    "rebuffer_ratio": ("Rebuffering", "percent"),
    "rebuffer_frequency": ("Rebuffers/min", "float"),
    "exits_before_video_start": ("Exits before start", "percent"),
    "playback_failure_rate": ("Failures", "percent"),
    "average_bitrate": ("Avg bitrate", "bitrate"),
    "viewer_experience_score": ("Score", "score"),
}
#: The charts over time: id → (title, [(metric, label, scale)]).
CHARTS: dict[str, tuple[str, list[tuple[str, str, float]]]] = {
    "chart-views": ("Views", [("views", "Views", 1), ("unique_viewers", "Viewers", 1)]),
    "chart-startup": (
        "Startup time (ms)",
        [("startup_time_p50", "p50", 1), ("startup_time_p95", "p95", 1)],
    ),
    "chart-quality": (
        "Rebuffering (%) and score",
        [("rebuffer_ratio", "Rebuffering %", 100), ("viewer_experience_score", "Score", 1)],
    ),
}

#: What the charts plot: all the series computes.
CHART_METRICS = list(dict.fromkeys(m for _, lines in CHARTS.values() for m, _, _ in lines))


def shown(value: Any, kind: str) -> str:
    """A metric as a table cell."""
    if value is None:
        return "–"
    if kind == "int":
        return f"{int(value):,}"
    if kind == "percent":
        return f"{100 * value:.1f} %"
    if kind == "ms":
        return f"{value:,.0f} ms"
    if kind == "duration":
        s = int(value)
        return f"{s // 3600}h {s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m {s % 60:02d}s"
    if kind == "bitrate":
        return f"{value / 1e6:.2f} Mb/s"
    if kind == "score":
        return f"{value:.0f}"
    return f"{value:.2f}"


def _epoch(bucket: str) -> int:
    t = datetime.fromisoformat(bucket.replace("Z", "+00:00"))
    return int((t if t.tzinfo else t.replace(tzinfo=UTC)).timestamp())


def _quality(rt: Runtime) -> dict[str, Any]:
    """The data-quality gate's latest result: the last build job, the warehouse file's
    last write (any build on this host: the job's or ``mediaplane analytics build``'s),
    and the last failure (current unless a build ran since)."""
    warehouse = warehouse_path(rt.settings.data_path)
    built_at = (
        datetime.fromtimestamp(warehouse.stat().st_mtime, UTC) if warehouse.is_file() else None
    )
    with rt.db.session() as s:
        job = s.scalars(
            select(Job)
            .where(Job.type == BuildAnalytics.job_type)
            .order_by(Job.created_at.desc(), Job.id.desc())
            .limit(1)
        ).first()
        failed = s.scalars(
            select(OutboxRow)
            .where(OutboxRow.type == EventType.ANALYTICS_QUALITY_FAILED.value)
            .order_by(OutboxRow.id.desc())
            .limit(1)
        ).first()
        out: dict[str, Any] = {"build": None, "failure": None, "built_at": built_at}
        if job is not None:
            out["build"] = {
                "state": str(job.state),
                "at": job.finished_at or job.started_at or job.created_at,
                "error": job.error,
            }
        if failed is not None:
            data = failed.data or {}
            # current: the latest build raised it (or none has finished since); a failing
            # build writes the warehouse before it emits the failure
            current = (
                job is None
                or job.state in (JobState.PENDING, JobState.RUNNING)
                or job.started_at is None
                or failed.created_at >= job.started_at
            ) and (built_at is None or built_at <= failed.created_at)
            out["failure"] = {
                "at": failed.created_at,
                "nodes": [
                    f.get("node", "?") for f in data.get("failed") or [] if isinstance(f, dict)
                ],
                "error": data.get("error"),
                "current": current,
            }
        return out


def figures(
    lake: Lake, scope: ViewScope, q: MetricsQuery, tables: list[str]
) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, list[dict[str, Any]]]]:
    """The page's numbers: the total, the series (``q``'s interval) and each table's rows,
    each grouping computing only the metrics the page shows of it (blocking)."""
    queries = {
        "": MetricsQuery(q.start, q.end),
        **{g: MetricsQuery(q.start, q.end, g) for g in tables},
    }
    with Breakdowns(lake, scope, q.start, q.end) as b:
        got = b.many(queries, list(COLUMNS))
        series = b.rows(MetricsQuery(q.start, q.end, q.group_by, q.interval), CHART_METRICS)
    return got[""][0], series, {g: got[g] for g in tables}


def dashboard(rt: Runtime, user: User, asset_id: str | None, q: MetricsQuery) -> dict[str, Any]:
    """Everything the page shows (blocking)."""
    principal = user_principal(user)
    scope = metrics_scope(rt, principal, asset_id)
    titles: dict[str, str] = {}
    with rt.db.session() as s:
        for a_id, title in s.execute(
            select(Asset.id, Asset.title).where(Asset.id.in_(set(scope.asset_ids)))
        ):
            titles[a_id] = title or a_id
    tables = [g for g in TABLES if not (g == "asset" and asset_id)]
    total, series, breakdowns = figures(lake_of(rt), scope, q, tables)
    times = [_epoch(r["group"]) for r in series]
    charts = {
        cid: {
            "title": title,
            "labels": [label for _, label, _ in lines],
            "data": [
                times,
                *[
                    [None if r[m] is None else round(r[m] * scale, 3) for r in series]
                    for m, _, scale in lines
                ],
            ],
        }
        for cid, (title, lines) in CHARTS.items()
    }
    return {
        "total": total,
        "charts": charts,
        "tables": [(g, TABLES[g], breakdowns[g]) for g in tables],
        "titles": titles,
        "asset_title": titles.get(asset_id, asset_id) if asset_id else None,
        "playback_ids": len(scope.playback_ids),
        "quality": _quality(rt),
    }


def _range(
    start: str | None, end: str | None, interval: str | None
) -> tuple[MetricsQuery, str, str]:
    """The page's range: dates (inclusive) in the form, 7 days up to today by default."""
    today = datetime.now(UTC).date()
    end_day = end or today.isoformat()
    start_day = start or (datetime.fromisoformat(end_day).date() - timedelta(days=6)).isoformat()
    if interval is None:
        days = (datetime.fromisoformat(end_day) - datetime.fromisoformat(start_day)).days + 1
        interval = "hour" if days <= 2 else "day"
    return MetricsQuery.parse(start_day, end_day, "time", interval), start_day, end_day


@router.get("/analytics", response_class=HTMLResponse)
def analytics_page(
    request: Request,
    asset_id: str | None = Query(None, max_length=64),
    start: str | None = Query(None, alias="from", max_length=10),
    end: str | None = Query(None, alias="to", max_length=10),
    interval: str | None = Query(None, max_length=8),
    rt: Runtime = Depends(runtime_dep),
) -> Response:
    user = session_user(request)
    if user is None:
        return see_other("/signin?next=" + quote(str(request.url.path)))
    ctx: dict[str, Any] = {
        "user": user,
        "asset_id": asset_id,
        "columns": COLUMNS,
        "shown": shown,
        "is_admin": str(user.role) == "admin",
        "admin_nav": ADMIN_NAV,
        "here": "/analytics",
    }
    try:
        q, start_day, end_day = _range(start, end, interval)
    except (MetricsQueryError, ValueError) as exc:
        msg = str(exc) if isinstance(exc, MetricsQueryError) else "Dates are YYYY-MM-DD."
        return page(request, "notice.html", {"title": "Analytics", "message": msg}, 400)
    ctx |= {"from": start_day, "to": end_day, "interval": q.interval}
    query = {"from": start_day, "to": end_day, **({"asset_id": asset_id} if asset_id else {})}
    ctx["query"] = urlencode(query)
    try:
        ctx |= dashboard(rt, user, asset_id, q)
    except AssetNotFound:
        ctx = {"title": "Analytics", "message": "There is no such video."}
        return page(request, "notice.html", ctx, 404)
    return page(request, "analytics.html", ctx)


@router.get("/analytics/export.csv")
def analytics_export(
    request: Request,
    table: str = Query(max_length=16),
    asset_id: str | None = Query(None, max_length=64),
    start: str | None = Query(None, alias="from", max_length=10),
    end: str | None = Query(None, alias="to", max_length=10),
    interval: str | None = Query(None, max_length=8),
    rt: Runtime = Depends(runtime_dep),
) -> Response:
    """One dashboard table (``table``: a breakdown, ``time`` or ``total``) as CSV, every
    metric a column."""
    user = session_user(request)
    if user is None:
        return Response("Sign in first.\n", status_code=401, media_type="text/plain")
    if table not in (*TABLES, "time", "total"):
        return Response("Unknown table.\n", status_code=400, media_type="text/plain")
    try:
        q, start_day, end_day = _range(start, end, interval)
        scope = metrics_scope(rt, user_principal(user), asset_id)
    except (MetricsQueryError, ValueError):
        return Response("Dates are YYYY-MM-DD.\n", status_code=400, media_type="text/plain")
    except AssetNotFound:
        return Response("No such video.\n", status_code=404, media_type="text/plain")
    group = None if table == "total" else (q.group_by if table == "time" else table)
    sub = MetricsQuery(q.start, q.end, group, q.interval if table == "time" else None)
    with Breakdowns(lake_of(rt), scope, q.start, q.end, materialize=False) as b:  # one grouping
        rows = b.rows(sub)
    body = metrics_csv("time" if table == "time" else group, list(METRICS), rows)
    name = f"analytics-{table}-{start_day}-{end_day}.csv"
    return Response(
        body,
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "no-store",
        },
    )
