"""QoE metrics and their breakdowns, computed by DuckDB from the lake's Parquet files
(``GET /api/v1/data/metrics/{metric}`` and the analytics dashboards).

The definitions are the dbt project's (``analytics/dbt/models/marts``): a view is one
``view_id`` with the fields of ``fct_views`` (over events deduplicated as
``stg_beacon_events`` does, bitrates held as ``stg_bitrate_intervals`` holds them), and a
group's metrics aggregate its views as ``qoe_daily`` does per day — here per any
dimension. The viewer-experience score's thresholds are the project's vars
(``startup_good_ms``, ``startup_bad_ms`` in ``dbt_project.yml``). The warehouse is built on
a schedule; this reads the lake itself, so a view counts here as soon as it has landed.

Metrics (:data:`METRICS`), for the views that *started* in ``[from, to)``:

==========================  ==================================================================
views                       views (count)
unique_viewers              distinct pseudonymous viewers
watch_time                  watched seconds, summed (each view's largest ``watched_ms``)
startup_time_p50 / _p95     the median / 95th percentile of the views' startup time (ms;
                            views that showed a frame)
rebuffer_ratio              stalled ms / (stalled ms + watched ms), over all the views' time
rebuffer_frequency          rebuffer starts per minute watched
exits_before_video_start    share of views that showed no frame and had no fatal error
playback_failure_rate       share of views with a fatal error
average_bitrate             the mean of the views' average reported bitrate (bits/s)
weighted_bitrate            the bitrate weighted by how long each played, by watch time
viewer_experience_score     the mean of the views' scores (0–100; formula in schema.yml)
==========================  ==================================================================

Dimensions (:data:`DIMENSIONS`): ``player`` (the beacon's player name), ``browser`` and
``os`` (from the beacon request's User-Agent, by :data:`BROWSER_SQL` / :data:`OS_SQL`),
``rendition`` (the rendition the view played longest, by held time as for the weighted
bitrate), ``asset``, and time: ``date`` (UTC day), ``hour``, or ``time`` with
``interval=hour|day`` (the bucket of the view's start; empty buckets are listed).
``country`` (the viewer's, as the rights checks saw it when the beacons came: a trusted
CDN header or the operator's address table; None: unknown) and ``cdn`` (the host the
view's media segments came from, as its player reported it).

Reading (partition pruning and the view cache, :class:`ViewCache`): a request reads the
per-view rows of the hours of its range only. Those are computed from the lake's
``date=…/hour=…`` event files of that hour and its neighbours (an hour either side: a view
that began in the hour before is seen beginning there and left out; a view keeps its
events of the next hour; a view longer than that is cut there), once per set of files, and
kept as Parquet under the lake's work dir (a day that is over: its whole day, in one file);
no event file outside those hours is opened. A view counts as soon as its events have
landed. The cache's files are read once per process into memory (:class:`_Memory`, one
in-memory DuckDB database); a page copies its views from there into a temp table and
groups it; one grouping (the API, a CSV) reads them through a view, without the copy.
While pages read the cache, the flusher computes and loads the current hours after each
flush (:meth:`ViewCache.refresh`): the page after a flush finds them ready.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import shutil
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import yaml

from ._lake import Lake, lake_of, no_rows_sql
from ._warehouse import DBT_PROJECT

if TYPE_CHECKING:
    from mediaplane.runtime import Runtime

__all__ = [
    "DIMENSIONS",
    "METRICS",
    "Breakdowns",
    "MetricsQuery",
    "MetricsQueryError",
    "ViewCache",
    "ViewScope",
    "breakdown",
    "prune_lake",
]


class MetricsQueryError(ValueError):
    """A metrics request that cannot be answered (unknown metric or group, a dimension
    with no data, a bad range): a 400."""


@dataclass(frozen=True)
class Metric:
    sql: str  # an aggregate over the per-view rows ``v``
    unit: str
    definition: str
    zero_when_empty: bool = False  # a count: 0 for an empty bucket (else null)


def _ratio(a: str, b: str) -> str:  # the dbt project's ``ratio`` macro
    return f"CASE WHEN ({b}) IS NULL OR ({b}) = 0 THEN NULL ELSE CAST({a} AS DOUBLE) / ({b}) END"


def _clamp01(x: str) -> str:  # the dbt project's ``clamp01`` macro
    return f"CASE WHEN ({x}) < 0 THEN 0.0 WHEN ({x}) > 1 THEN 1.0 ELSE ({x}) END"


METRICS: dict[str, Metric] = {
    "views": Metric("count(*)", "views", "Views (view_id) that started in the range.", True),
    "unique_viewers": Metric(
        "count(DISTINCT viewer)", "viewers", "Distinct pseudonymous viewers.", True
    ),
    "watch_time": Metric(
        "coalesce(sum(watch_time_s), 0)",
        "s",
        "Seconds watched: the sum of each view's largest running watched_ms.",
        True,
    ),
    "startup_time_p50": Metric(
        "quantile_cont(startup_time_ms, 0.5)",
        "ms",
        "Median time from view_start to the first frame, over the views that showed one.",
    ),
    "startup_time_p95": Metric(
        "quantile_cont(startup_time_ms, 0.95)",
        "ms",
        "95th percentile of the startup time (continuous), over the views that showed a frame.",
    ),
    "rebuffer_ratio": Metric(
        _ratio("sum(rebuffer_ms)", "sum(rebuffer_ms + watched_ms)"),
        "ratio",
        "Time stalled over time stalled plus watched (qoe_daily.rebuffer_percentage, 0–1).",
    ),
    "rebuffer_frequency": Metric(
        _ratio("sum(rebuffer_count)", "sum(watched_ms) / 60000.0"),
        "per minute",
        "Rebuffer starts per minute watched.",
    ),
    "exits_before_video_start": Metric(
        _ratio("sum(CASE WHEN exited_before_start THEN 1 ELSE 0 END)", "count(*)"),
        "ratio",
        "Share of views that showed no frame and had no fatal error (the viewer left).",
    ),
    "playback_failure_rate": Metric(
        _ratio("sum(CASE WHEN playback_failed THEN 1 ELSE 0 END)", "count(*)"),
        "ratio",
        "Share of views with a fatal error event.",
    ),
    "average_bitrate": Metric(
        "avg(average_bitrate)",
        "bit/s",
        "Mean of the views' average reported bitrate (heartbeats and rendition switches).",
    ),
    "weighted_bitrate": Metric(
        _ratio(
            "sum(weighted_bitrate * watched_ms)",
            "sum(CASE WHEN weighted_bitrate IS NOT NULL THEN watched_ms END)",
        ),
        "bit/s",
        "Each view's time-weighted bitrate, weighted again by its watch time.",
    ),
    "viewer_experience_score": Metric(
        "avg(viewer_experience_score)",
        "score",
        "Mean of the views' viewer experience scores (0-100, dbt fct_views formula).",
    ),
}


def _first_match(rules: Sequence[tuple[str, str]]) -> str:
    """SQL: the name of the first ``(pattern, name)`` rule the User-Agent matches, else
    'Other' (NULL without a User-Agent)."""
    whens = "".join(
        f"\n  WHEN regexp_matches(user_agent, '{pattern}') THEN '{name}'" for pattern, name in rules
    )
    return f"CASE\n  WHEN user_agent IS NULL THEN NULL{whens}\n  ELSE 'Other' END"


#: A small User-Agent parser (order matters: Edge and Opera say Chrome, Chrome says Safari).
BROWSER_SQL = _first_match(
    [
        ("Edg(e|A|iOS)?/", "Edge"),
        ("OPR/|Opera", "Opera"),
        ("SamsungBrowser/", "Samsung Internet"),
        ("Firefox/|FxiOS/", "Firefox"),
        ("HeadlessChrome/", "Chrome Headless"),
        ("Chromium/", "Chromium"),
        ("Chrome/|CriOS/", "Chrome"),
        ("Version/[0-9.]+.*Safari/", "Safari"),
    ]
)
OS_SQL = _first_match(
    [
        ("Windows", "Windows"),
        ("Android", "Android"),
        ("iPhone|iPad|iPod", "iOS"),
        ("CrOS", "ChromeOS"),
        ("Mac OS X|Macintosh", "macOS"),
        ("Linux|X11", "Linux"),
    ]
)

#: group_by → the column of the views in memory it groups on (:class:`_Memory`: a name
#: as its number, an asset as its place in the scope, time as hours since 1970).
DIMENSIONS: dict[str, str] = {
    "player": "player_name",
    "browser": "browser",
    "os": "os",
    "rendition": "rendition",
    "asset": "asset_id",
    "country": "country",
    "cdn": "cdn",
    "date": "hour_no // 24",
    "hour": "hour_no",
}
#: The view columns :class:`_Memory` holds as numbers (``names``), read back per group.
NAMED = ("playback_id", "player_name", "browser", "os", "rendition", "country", "cdn")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
TIME_GROUPS = {"date": "day", "hour": "hour", "time": None}
INTERVALS = ("hour", "day")
#: Time buckets one answer lists at most.
MAX_BUCKETS = 5000
#: A day whose end is this long past is closed: its hours' views go into one cache file
#: (beacon times are clamped to their receipt, so late files are rare; when one lands, the
#: day's key changes and it is computed again).
CLOSED = timedelta(hours=2)


@cache
def _score_vars() -> tuple[int, int]:
    """The dbt project's startup thresholds of the viewer-experience score."""
    doc = yaml.safe_load((DBT_PROJECT / "dbt_project.yml").read_text(encoding="utf-8"))
    v = doc["vars"]
    return int(v["startup_good_ms"]), int(v["startup_bad_ms"])


#: Per-view fields only the views API lists (:func:`per_view_sql` with ``detail``).
_DETAIL = """,
    min(player_version) AS player_version,
    count(*) FILTER (WHERE type = 'error') AS errors,
    list(DISTINCT code) FILTER (WHERE type = 'error' AND code IS NOT NULL) AS error_codes,
    list(DISTINCT rendition) FILTER (WHERE rendition IS NOT NULL) AS renditions,
    bool_or(type = 'end') AS ended,
    count(*) AS events"""


def per_view_sql(
    events: str = "read_parquet($events, union_by_name = true)",
    *,
    scoped: bool = True,
    detail: bool = False,
) -> str:
    """One row per view with the fields of dbt's ``fct_views`` (and the breakdown
    dimensions) for the views that started in ``[$from, $to)``: with ``scoped``, only
    those of ``$playback_ids``, each with its asset (``$asset_ids``, zipped); with
    ``detail``, also the fields the views API lists (player version, error count and
    codes, renditions, ended, events)."""
    good, bad = _score_vars()
    startup = _clamp01(f"1.0 - (startup_time_ms - {good}) / {bad - good}.0")
    scope_cte = (
        "scope AS (SELECT unnest($playback_ids) AS playback_id, unnest($asset_ids) AS asset_id), "
        if scoped
        else ""
    )
    where = "WHERE playback_id IN (SELECT playback_id FROM scope)" if scoped else ""
    asset = "scope.asset_id" if scoped else "NULL::VARCHAR AS asset_id"
    join = "JOIN scope ON scope.playback_id = v.playback_id" if scoped else ""
    return f"""
WITH {scope_cte}e AS (
  SELECT event_id, view_id, type, ts, received_at, playback_id, viewer, player_name,
         user_agent, rendition, bitrate, startup_ms, duration_ms, watched_ms, fatal,
         country, cdn{", player_version, code" if detail else ""}
  -- files from before a column existed read it as NULL (a lake of only those too)
  FROM ({no_rows_sql("events")} UNION ALL BY NAME SELECT * FROM {events})
  {where}
  QUALIFY row_number() OVER (PARTITION BY view_id, event_id ORDER BY received_at) = 1
), v AS (
  SELECT
    view_id,
    min(playback_id) AS playback_id,
    min(viewer) AS viewer,
    min(player_name) AS player_name,
    min(user_agent) AS user_agent,
    min(country) AS country,
    min(cdn) AS cdn,
    min(ts) AS started_at,
    max(ts) AS last_ts,
    min(CASE WHEN type = 'first_frame' THEN startup_ms END) AS startup_time_ms,
    sum(CASE WHEN type = 'first_frame' THEN 1 ELSE 0 END) AS first_frames,
    sum(CASE WHEN type = 'rebuffer_start' THEN 1 ELSE 0 END) AS rebuffer_count,
    coalesce(sum(CASE WHEN type = 'rebuffer_end' THEN duration_ms END), 0) AS rebuffer_ms,
    coalesce(max(watched_ms), 0) AS watched_ms,
    sum(CASE WHEN type = 'error' AND fatal THEN 1 ELSE 0 END) AS fatal_errors,
    avg(CAST(bitrate AS DOUBLE)) AS average_bitrate,
    max(bitrate) AS max_bitrate{_DETAIL if detail else ""}
  FROM e GROUP BY view_id
  HAVING min(ts) >= $from AND min(ts) < $to
), held AS (
  SELECT e.view_id, e.rendition, e.bitrate,
         date_diff('millisecond', e.ts,
                   coalesce(lead(e.ts) OVER (PARTITION BY e.view_id ORDER BY e.ts), v.last_ts))
           AS held_ms
  FROM e JOIN v ON v.view_id = e.view_id
  WHERE e.bitrate IS NOT NULL
), w AS (
  SELECT view_id,
         {_ratio("sum(bitrate * held_ms)", "sum(held_ms)")} AS weighted_bitrate,
         arg_max(rendition, held_ms) FILTER (WHERE rendition IS NOT NULL) AS rendition
  FROM (SELECT view_id, rendition, any_value(bitrate) AS bitrate, sum(held_ms) AS held_ms
        FROM held GROUP BY view_id, rendition, bitrate)
  GROUP BY view_id
), q AS (
  SELECT v.*, w.weighted_bitrate, w.rendition, {asset},
         v.watched_ms / 1000.0 AS watch_time_s,
         v.first_frames > 0 AS video_started,
         v.fatal_errors > 0 AS playback_failed,
         (v.first_frames = 0 AND v.fatal_errors = 0) AS exited_before_start,
         {_ratio("v.rebuffer_ms", "v.rebuffer_ms + v.watched_ms")} AS rebuffer_percentage
  FROM v LEFT JOIN w ON w.view_id = v.view_id {join}
), scored AS (
  SELECT q.*,
    CASE WHEN playback_failed THEN 0.0 WHEN exited_before_start THEN 0.5 ELSE 1.0 END
      AS playback_success_score,
    CASE WHEN startup_time_ms IS NULL THEN NULL ELSE {startup} END AS startup_score,
    {_clamp01("1.0 - 10.0 * coalesce(rebuffer_percentage, 0)")} AS smoothness_score,
    coalesce({_ratio("weighted_bitrate", "max_bitrate")}, 1.0) AS quality_score
  FROM q
)
SELECT *,
  100.0 * playback_success_score * (
    CASE WHEN video_started
         THEN 0.4 * startup_score + 0.4 * smoothness_score + 0.2 * quality_score
         ELSE 1.0 END) AS viewer_experience_score,
  {BROWSER_SQL} AS browser,
  {OS_SQL} AS os
FROM scored
"""


@dataclass(frozen=True)
class ViewScope:
    """Whose views: playback ids and the asset each belongs to."""

    playback_ids: Sequence[str]
    asset_ids: Sequence[str]


def _hour_key(path: str) -> str | None:
    m = re.search(r"/date=(\d{4}-\d{2}-\d{2})/hour=(\d{2})/", path)
    return f"{m[1]}T{m[2]}" if m else None


@dataclass(frozen=True)
class MetricsQuery:
    """A checked request: the range (naive UTC), the grouping and the bucket size."""

    start: datetime
    end: datetime
    group_by: str | None = None
    interval: str | None = None

    @classmethod
    def parse(
        cls,
        start: str | None,
        end: str | None,
        group_by: str | None,
        interval: str | None,
        *,
        default_days: int = 7,
    ) -> MetricsQuery:
        """From request parameters (ISO dates or times; UTC unless they say otherwise).

        :raises MetricsQueryError: an unknown group or interval, a bad range.
        """
        now = datetime.now(UTC).replace(tzinfo=None)
        to = _parse_time(end, "to") if end else now
        frm = _parse_time(start, "from") if start else to - timedelta(days=default_days)
        if end and len(end) == 10:  # a date: the whole day
            to += timedelta(days=1)
        if frm >= to:
            raise MetricsQueryError("from must be before to.")
        if group_by is not None and group_by not in DIMENSIONS and group_by != "time":
            known = ", ".join([*DIMENSIONS, "time"])
            raise MetricsQueryError(f"Unknown group_by {group_by!r}: one of {known}.")
        if interval is not None:
            if group_by not in TIME_GROUPS:
                raise MetricsQueryError("interval applies to group_by=time (or date, hour).")
            if interval not in INTERVALS:
                raise MetricsQueryError("interval is hour or day.")
        if group_by in TIME_GROUPS:
            interval = interval or TIME_GROUPS[group_by] or "day"
            group_by = "hour" if interval == "hour" else "date"
            step = timedelta(hours=1) if interval == "hour" else timedelta(days=1)
            if (to - frm) / step > MAX_BUCKETS:
                raise MetricsQueryError(f"More than {MAX_BUCKETS} {interval}s: a larger interval.")
        return cls(frm, to, group_by, interval)

    @property
    def is_time(self) -> bool:
        return self.interval is not None


def _parse_time(text: str, name: str) -> datetime:
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise MetricsQueryError(f"{name}: an ISO 8601 date or time.") from None
    if t.tzinfo is not None:
        t = t.astimezone(UTC).replace(tzinfo=None)
    return t


def _buckets(q: MetricsQuery) -> list[str]:
    if q.interval == "hour":
        t = q.start.replace(minute=0, second=0, microsecond=0)
        step, fmt = timedelta(hours=1), "%Y-%m-%dT%H:00:00Z"
    else:
        t = q.start.replace(hour=0, minute=0, second=0, microsecond=0)
        step, fmt = timedelta(days=1), "%Y-%m-%d"
    out = []
    while t < q.end:
        out.append(t.strftime(fmt))
        t += step
    return out


#: What the view cache keeps of each view: what the metrics and dimensions read (the
#: User-Agent only as its browser and OS). A change here is a new :data:`CACHE_VERSION`.
VIEW_COLUMNS = (
    "view_id",
    "playback_id",
    "viewer",
    "player_name",
    "browser",
    "os",
    "rendition",
    "country",
    "cdn",
    "started_at",
    "startup_time_ms",
    "rebuffer_count",
    "rebuffer_ms",
    "watched_ms",
    "watch_time_s",
    "exited_before_start",
    "playback_failed",
    "average_bitrate",
    "weighted_bitrate",
    "viewer_experience_score",
)
#: Part of every cache key: files of another version are never read.
CACHE_VERSION = "v2"
_CACHE_LOCK = threading.Lock()
#: A page read the view cache this recently: the flusher keeps its current hours computed
#: (:meth:`ViewCache.refresh`).
WARM_S = 900.0
#: A superseded cache file is deleted once it is this old (a reader that listed it before
#: it was superseded, in this process or another, is done with it by then).
SUPERSEDED_S = 600.0


def _sweep(current: Path) -> None:
    """Delete the files ``current`` supersedes (the same hour or day, other keys) once
    they are :data:`SUPERSEDED_S` old."""
    cutoff = time.time() - SUPERSEDED_S
    for old in current.parent.glob("*.parquet"):
        if old != current:
            with contextlib.suppress(FileNotFoundError):
                if old.stat().st_mtime < cutoff:
                    old.unlink()


class ViewCache:
    """The lake's views as Parquet, one file per hour of their start, computed once per set
    of lake files they depend on (a process's own cache, under the lake's work dir)::

        <work>/views/hour=YYYY-MM-DDTHH/<key>.parquet

    The views that started in hour H are computed from the event files of H-1, H and H+1
    (H-1: a view that began before H is seen beginning there, not in H; H+1: a view keeps
    its events past the hour); ``key`` is a hash of those files' names. Lake files are
    immutable, so a file that lands in them makes a new key and the hour is computed again
    (the current hour and the one before it, as beacons land); the superseded file is
    removed once :data:`SUPERSEDED_S` old. Stale hours are computed together, in one query.
    A day over for :data:`CLOSED` is merged into one file (``day=YYYY-MM-DD/<key>``, the key
    of its hours' keys), its hour files removed.

    A read marks the cache warm (``.read``'s time, for every process of the data dir): then
    the flusher computes the current and previous hour after each flush (:meth:`refresh`),
    and the next page finds them ready instead of computing them itself.
    """

    def __init__(self, lake: Lake) -> None:
        self.lake = lake
        self.dir = lake.work_dir / "views"
        self.computed = 0  # hours computed by this instance (the rest were cached)

    def files(self, start: datetime, end: datetime, *, read: bool = True) -> list[str]:
        """The per-view files of the hours in ``[start, end)`` that have events (blocking).

        :param read: for a reader (the cache is then warm, :data:`WARM_S`)."""
        if read:
            self.dir.mkdir(parents=True, exist_ok=True)
            (self.dir / ".read").touch()
        by_hour: dict[str, list[str]] = {}
        for f in self.lake.files("events"):
            key = _hour_key(f)
            if key is not None:
                by_hour.setdefault(key, []).append(f)

        def entry(h: str) -> tuple[str, Path, list[str]]:
            t = datetime.fromisoformat(h + ":00")
            deps = sorted(
                f
                for d in (-1, 0, 1)
                for f in by_hour.get((t + timedelta(hours=d)).strftime("%Y-%m-%dT%H"), [])
            )
            names = [CACHE_VERSION, *(f.rpartition("/")[2] for f in deps)]
            digest = hashlib.sha256("\n".join(names).encode()).hexdigest()
            return digest[:20], self.dir / f"hour={h}" / f"{digest[:20]}.parquet", deps

        wanted: list[str] = []  # the hours of the range that have events
        hour = start.replace(minute=0, second=0, microsecond=0)
        while hour < end:
            if (h := hour.strftime("%Y-%m-%dT%H")) in by_hour:
                wanted.append(h)
            hour += timedelta(hours=1)
        closed_before = datetime.now(UTC).replace(tzinfo=None) - CLOSED
        out: list[str] = []
        stale: dict[str, tuple[Path, list[str]]] = {}
        merges: list[tuple[Path, list[Path]]] = []
        for day in sorted({h[:10] for h in wanted}):
            if datetime.fromisoformat(day) + timedelta(days=1) <= closed_before:
                hours = sorted(h for h in by_hour if h.startswith(day))  # the whole day
                entries = [(h, *entry(h)) for h in hours]
                digest = hashlib.sha256(" ".join(e[1] for e in entries).encode()).hexdigest()
                day_path = self.dir / f"day={day}" / f"{digest[:20]}.parquet"
                out.append(str(day_path))
                if day_path.is_file():
                    continue
                merges.append((day_path, [e[2] for e in entries]))
            else:
                entries = [(h, *entry(h)) for h in wanted if h.startswith(day)]
                out.extend(str(e[2]) for e in entries)
            for h, _, path, deps in entries:
                if not path.is_file():
                    stale[h] = (path, deps)
        if stale or merges:
            with _CACHE_LOCK:  # one computation at a time in a process
                stale = {h: e for h, e in stale.items() if not e[0].is_file()}
                if stale:
                    self._compute(stale)
                for day_path, parts in merges:
                    if not day_path.is_file():
                        self._merge(day_path, parts)
        return out

    def refresh(self, now: datetime | None = None) -> bool:
        """After a flush: compute the current and the previous hour now (what the lake's
        new files changed) and load them into this process's memory (:class:`_Memory`), if
        a page read the cache in the last :data:`WARM_S` (blocking). Returns whether it
        was warm.

        :param now: the current time (naive UTC; default: the clock's)."""
        try:
            warm = time.time() - (self.dir / ".read").stat().st_mtime < WARM_S
        except FileNotFoundError:
            return False
        if warm:
            now = now or datetime.now(UTC).replace(tzinfo=None)
            hour = now.replace(minute=0, second=0, microsecond=0)
            _memory().hold(
                self.files(hour - timedelta(hours=1), hour + timedelta(hours=1), read=False)
            )
        return warm

    def prune(self, before: str) -> None:
        """Delete the hours and days of dates before ``before`` (``YYYY-MM-DD``)."""
        if not self.dir.is_dir():
            return
        for d in self.dir.iterdir():  # hour=YYYY-MM-DDTHH, day=YYYY-MM-DD
            day = d.name.partition("=")[2][:10]
            if d.is_dir() and day < before:
                shutil.rmtree(d, ignore_errors=True)

    def _merge(self, day_path: Path, parts: list[Path]) -> None:
        """One file for a day whose hours are closed (fewer files to open per read)."""
        day_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = day_path.with_name(f".{uuid.uuid4().hex[:8]}.tmp")
        con = duckdb.connect()
        try:
            con.execute(
                f"COPY (SELECT * FROM read_parquet($parts)) TO '{tmp}' "
                "(FORMAT parquet, COMPRESSION zstd)",
                {"parts": [str(p) for p in parts]},
            )
        finally:
            con.close()
        tmp.replace(day_path)
        _sweep(day_path)
        for part in parts:
            part.unlink(missing_ok=True)

    def _compute(self, stale: dict[str, tuple[Path, list[str]]]) -> None:
        files = sorted({f for _, deps in stale.values() for f in deps})
        first = datetime.fromisoformat(min(stale) + ":00")
        last = datetime.fromisoformat(max(stale) + ":00") + timedelta(hours=1)
        con = duckdb.connect()
        try:
            con.execute(
                "CREATE TEMP TABLE pv AS SELECT *, strftime(started_at, '%Y-%m-%dT%H') AS h "
                "FROM (" + per_view_sql(scoped=False) + ")",
                {"events": files, "from": first, "to": last},
            )
            for h, (path, _) in stale.items():
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_name(f".{uuid.uuid4().hex[:8]}.tmp")
                con.execute(
                    f"COPY (SELECT {', '.join(VIEW_COLUMNS)} FROM pv WHERE h = $h) TO '{tmp}' "
                    "(FORMAT parquet, COMPRESSION zstd)",
                    {"h": h},
                )
                tmp.replace(path)
                _sweep(path)
                self.computed += 1
        finally:
            con.close()


def prune_lake(rt: Runtime) -> int:
    """A watchdog pass: delete the lake's partitions older than the retention, and the
    view cache's hours and days of those dates (per-view rows derived from them: the
    pseudonyms and countries go with the events). Returns the lake files deleted."""
    keep = rt.settings.analytics_retention_days
    cutoff = (datetime.now(UTC) - timedelta(days=keep)).strftime("%Y-%m-%d")
    lake = lake_of(rt)
    deleted = lake.prune(cutoff)
    ViewCache(lake).prune(cutoff)
    return deleted


#: The most views :class:`_Memory` holds (its least recently read files go first).
MEMORY_VIEWS = 5_000_000


class _Memory:
    """The view cache's files as tables of one process-wide in-memory DuckDB database,
    each loaded once (per file: path, size and mtime; a new key is a new file) and kept
    while it is read: a page's views come from memory, not from Parquet files, and no
    connection is opened per request (a cursor of this one is). A table whose file is
    gone or superseded (another file of its hour or day) is dropped; past
    :data:`MEMORY_VIEWS`, the least recently read. The tables hold each viewer as a
    number (``viewer_ids``, one per pseudonymous viewer the process has read: a distinct
    count over numbers, not strings; past :data:`MEMORY_VIEWS` viewers, mostly those of
    dropped tables, it starts over with the tables), each name a dimension groups on
    (:data:`NAMED`) as a number too (``names``; read back from :attr:`names`: grouping
    numbers is about twice as fast as grouping strings), the start's hour as a number
    (``hour_no``, hours since 1970) and no ``view_id`` (no metric reads it)."""

    def __init__(self) -> None:
        self.con = duckdb.connect()
        # no query here depends on the order rows were stored in (one that does says
        # ORDER BY): a page's temp table is written without keeping it, faster
        self.con.execute("SET GLOBAL preserve_insertion_order = false")
        # each viewer as a number (distinct viewers counted over numbers, not strings):
        # one for each pseudonymous viewer this process has read
        # (no primary keys: a load adds only what EXCEPT found missing, under the lock, and
        # an index made the first load of a week of views 150 ms slower)
        self.con.execute("CREATE TABLE viewer_ids (viewer VARCHAR, id BIGINT)")
        self.con.execute("CREATE TABLE names (value VARCHAR, id INTEGER)")
        #: number → name (of ``names``; a new list when it starts over: the views a page
        #: read keep the list their numbers are of)
        self.names: list[str | None] = [None]
        self.lock = threading.Lock()
        #: (path, size, mtime_ns) → (table, rows), least recently read first
        self.tables: OrderedDict[tuple[str, int, int], tuple[str, int]] = OrderedDict()
        self.rows = 0
        self.viewers = 0  # in viewer_ids
        self.pins: dict[str, int] = {}  # table → the open views reading it
        self.doomed: set[str] = set()  # dropped from :attr:`tables`, still pinned

    def load_views(
        self,
        cur: duckdb.DuckDBPyConnection,
        files: Sequence[str],
        playback_ids: Sequence[str],
        asset_nos: Sequence[int],
        start: datetime,
        end: datetime,
        *,
        materialize: bool = True,
    ) -> tuple[list[str], list[str | None]]:
        """``v`` on ``cur`` (a cursor of :attr:`con`): the views of the files' tables of
        these playback ids (each with its asset's number, ``asset_id``) that started in
        ``[start, end)``; a temp table (``materialize``: grouped several times) or a temp
        view over the tables (grouped once: no copy). Returns the tables it pinned
        (:meth:`unpin` them when done: a pinned table is dropped only once unpinned) and
        the names its numbers are of."""
        with self.lock:  # tables are loaded, dropped and pinned under it
            if self.viewers + len(self.names) > MEMORY_VIEWS:  # mostly of dropped tables
                for key in list(self.tables):
                    self._drop(key)
                self.con.execute("DELETE FROM viewer_ids")
                self.con.execute("DELETE FROM names")
                self.viewers, self.names = 0, [None]
            names = self._hold(files)
            union = " UNION ALL ".join(f"SELECT * FROM {n}" for n in names)
            cur.execute(
                "CREATE TEMP TABLE scope AS SELECT n.id AS playback_id, s.asset_id FROM "
                "(SELECT unnest($playback_ids) AS playback_id, unnest($asset_nos) AS asset_id) s "
                "JOIN names n ON n.value = s.playback_id",
                {"playback_ids": list(playback_ids), "asset_nos": list(asset_nos)},
            )
            select = (
                f"SELECT pv.* EXCLUDE (playback_id, started_at), scope.asset_id FROM ({union}) pv "
                "JOIN scope ON scope.playback_id = pv.playback_id "
                "WHERE pv.started_at >= {} AND pv.started_at < {}"
            )
            if materialize:
                cur.execute(
                    "CREATE TEMP TABLE v AS " + select.format("$from", "$to"),
                    {"from": start, "to": end},
                )
                return [], self.names
            # a view takes no parameters: the range as literals (datetimes, ISO)
            cur.execute(
                "CREATE TEMP VIEW v AS "
                + select.format(
                    f"TIMESTAMP '{start.isoformat(sep=' ')}'",
                    f"TIMESTAMP '{end.isoformat(sep=' ')}'",
                )
            )
            for n in names:
                self.pins[n] = self.pins.get(n, 0) + 1
            return names, self.names

    def hold(self, files: Sequence[str]) -> None:
        """Load these files' tables now (the flusher's :meth:`ViewCache.refresh`: the next
        page finds them in memory)."""
        with self.lock:
            self._hold(files)

    def _hold(self, files: Sequence[str]) -> list[str]:
        """The files' tables, loaded where they are not (lock held)."""
        keys = []
        for f in files:
            st = Path(f).stat()
            keys.append((f, st.st_size, st.st_mtime_ns))
        names = [self._table(k) for k in keys]
        self._evict(set(keys))
        return names

    def unpin(self, names: Sequence[str]) -> None:
        with self.lock:
            for n in names:
                self.pins[n] -= 1
                if not self.pins[n]:
                    del self.pins[n]
                    if n in self.doomed:
                        self.doomed.discard(n)
                        self.con.execute(f"DROP TABLE IF EXISTS {n}")

    def _table(self, key: tuple[str, int, int]) -> str:
        got = self.tables.get(key)
        if got is not None:
            self.tables.move_to_end(key)
            return got[0]
        name = f"pv_{uuid.uuid4().hex[:16]}"
        cols = ", ".join(
            "ids.id AS viewer" if c == "viewer" else f"n_{c}.id AS {c}" if c in NAMED else f"f.{c}"
            for c in VIEW_COLUMNS
            if c != "view_id"
        )
        joins = " ".join(f"LEFT JOIN names n_{c} ON n_{c}.value = f.{c}" for c in NAMED)
        self.con.execute("CREATE TEMP TABLE f AS SELECT * FROM read_parquet($f)", {"f": key[0]})
        try:
            self.con.execute(
                "INSERT INTO viewer_ids SELECT viewer, "
                "(SELECT coalesce(max(id), 0) FROM viewer_ids) + row_number() OVER () "
                "FROM (SELECT DISTINCT viewer FROM f WHERE viewer IS NOT NULL "
                "EXCEPT SELECT viewer FROM viewer_ids)"
            )
            got = self.con.execute("SELECT count(*) FROM viewer_ids").fetchone()
            self.viewers = int(got[0]) if got else 0
            values = " UNION ".join(f"SELECT {c} AS value FROM f" for c in NAMED)
            new = [
                r[0]
                for r in self.con.execute(
                    f"SELECT value FROM ({values}) WHERE value IS NOT NULL "
                    "EXCEPT SELECT value FROM names"
                ).fetchall()
            ]
            if new:
                first = len(self.names)
                self.con.execute(
                    "INSERT INTO names SELECT unnest($values), unnest($ids)",
                    {"values": new, "ids": list(range(first, first + len(new)))},
                )
                self.names.extend(new)
            self.con.execute(
                f"CREATE TABLE {name} AS SELECT {cols}, "
                "CAST(epoch_us(f.started_at) // 3600000000 AS INTEGER) AS hour_no FROM f "
                f"LEFT JOIN viewer_ids ids ON ids.viewer = f.viewer {joins}"
            )
        finally:
            self.con.execute("DROP TABLE f")
        row = self.con.execute(f"SELECT count(*) FROM {name}").fetchone()
        rows = int(row[0]) if row else 0
        parent = str(Path(key[0]).parent)
        for old in [k for k in self.tables if k != key and str(Path(k[0]).parent) == parent]:
            self._drop(old)  # superseded: another key of the same hour or day
        self.tables[key] = (name, rows)
        self.rows += rows
        return name

    def _evict(self, keep: set[tuple[str, int, int]]) -> None:
        for key in list(self.tables):
            if key not in keep and not Path(key[0]).is_file():
                self._drop(key)  # merged into its day, or swept
        for key in list(self.tables):
            if self.rows <= MEMORY_VIEWS:
                break
            if key not in keep:
                self._drop(key)

    def _drop(self, key: tuple[str, int, int]) -> None:
        name, rows = self.tables.pop(key)
        self.rows -= rows
        if self.pins.get(name):
            self.doomed.add(name)  # a view reads it: dropped once unpinned
        else:
            self.con.execute(f"DROP TABLE IF EXISTS {name}")


_MEMORY: list[_Memory] = []
_MEMORY_LOCK = threading.Lock()


def _memory() -> _Memory:
    """The process's :class:`_Memory` (made on first use)."""
    with _MEMORY_LOCK:
        if not _MEMORY:
            _MEMORY.append(_Memory())
        return _MEMORY[0]


class Breakdowns:
    """The views of a scope and range (from the :class:`ViewCache`'s files, as held in
    memory by :class:`_Memory`, into a DuckDB temp table), grouped as often as asked: what
    a dashboard page does (blocking)."""

    def __init__(
        self,
        lake: Lake,
        scope: ViewScope,
        start: datetime,
        end: datetime,
        *,
        materialize: bool = True,
    ) -> None:
        """:param materialize: the views copied into a temp table (grouped several
        times); otherwise ``v`` is a view over the memory's tables (grouped once)."""
        self.start, self.end = start, end
        self._memory = memory = _memory()
        self._pinned: list[str] = []
        self._names: list[str | None] = memory.names
        #: the scope's assets, by the number the views hold
        self._assets = list(dict.fromkeys(scope.asset_ids))
        number = {a: i for i, a in enumerate(self._assets)}
        self.cache = ViewCache(lake)
        files = self.cache.files(start, end) if scope.playback_ids else []
        self.files = len(files)
        with memory.lock:
            self.con = memory.con.cursor()
        try:
            if not files:
                self.con.execute("CREATE TEMP TABLE v AS SELECT * FROM (" + _EMPTY_VIEW + ")")
                return
            self._pinned, self._names = memory.load_views(
                self.con,
                files,
                scope.playback_ids,
                [number[a] for a in scope.asset_ids],
                start,
                end,
                materialize=materialize,
            )
        except BaseException:
            self.con.close()
            raise

    def close(self) -> None:
        self.con.close()
        pinned, self._pinned = self._pinned, []
        self._memory.unpin(pinned)

    def __enter__(self) -> Breakdowns:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def rows(self, q: MetricsQuery, metrics: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """One row per group: ``group`` and each metric (all by default), biggest first
        (time series: in time order, every bucket listed)."""
        return self.many({"": q}, metrics)[""]

    def many(
        self, queries: dict[str, MetricsQuery], metrics: Sequence[str] | None = None
    ) -> dict[str, list[dict[str, Any]]]:
        """:meth:`rows` of several groupings of the same views (a dashboard page's tables),
        one query per grouping. (One ``GROUPING SETS`` pass was measured no faster over
        500,000 views: bench/dashboard.py.)"""
        names = list(metrics or METRICS)
        exprs = _select(names)
        grouped: dict[str | None, list[dict[str, Any]]] = {}
        for dim in {q.group_by for q in queries.values()}:
            if dim is None:
                cur = self.con.execute(f"SELECT NULL AS grp, {exprs} FROM v")
            else:
                cur = self.con.execute(
                    f"SELECT {DIMENSIONS[dim]} AS grp, {exprs} FROM v GROUP BY grp"
                )
            cols = [d[0] for d in cur.description or ()]
            rows = []
            for row in cur.fetchall():
                r = dict(zip(cols, row, strict=True))
                if _STARTUP_QS in r:  # both percentiles from one sort
                    p50, p95 = r.pop(_STARTUP_QS) or (None, None)
                    r["startup_time_p50"], r["startup_time_p95"] = p50, p95
                group = None if r["grp"] is None else self._group(dim, r["grp"])
                rows.append({"group": group, **{k: _plain(r[k]) for k in (*names, "views")}})
            # biggest first, then by name (none last)
            rows.sort(key=lambda r: (-r["views"], r["group"] is None, r["group"] or ""))
            grouped[dim] = rows
        result: dict[str, list[dict[str, Any]]] = {}
        for label, q in queries.items():
            got = [dict(r) for r in grouped.get(q.group_by, [])]
            if q.group_by is None and (not got or got[0]["views"] == 0):
                got = [{"group": None, **_empty(names)}]
            if q.is_time:
                by = {r["group"]: r for r in got}
                got = [by.get(b) or {"group": b, **_empty(names)} for b in _buckets(q)]
            result[label] = got
        return result

    def _group(self, dim: str | None, value: int) -> str | None:
        """A group's name from the number the views hold (:data:`DIMENSIONS`)."""
        if dim == "asset":
            return self._assets[value]
        if dim == "hour":
            return (_EPOCH + timedelta(hours=value)).strftime("%Y-%m-%dT%H:00:00Z")
        if dim == "date":
            return (_EPOCH + timedelta(days=value)).strftime("%Y-%m-%d")
        return self._names[value]


_STARTUP_QS = "startup_time_quantiles"


def _select(names: Sequence[str]) -> str:
    """The aggregates of ``names`` (and ``views``); the two startup percentiles, when
    both are asked, as one ``quantile_cont`` of both (one sort of the startup times, the
    same values)."""
    both = {"startup_time_p50", "startup_time_p95"} <= set(names)
    exprs = [
        f"{METRICS[n].sql} AS {n}"
        for n in names
        if not (both and n in ("startup_time_p50", "startup_time_p95"))
    ]
    if both:
        exprs.append(f"quantile_cont(startup_time_ms, [0.5, 0.95]) AS {_STARTUP_QS}")
    if "views" not in names:
        exprs.append("count(*) AS views")
    return ", ".join(exprs)


_EMPTY_VIEW = """SELECT NULL::BIGINT AS viewer, NULL::INTEGER AS player_name,
  NULL::INTEGER AS browser, NULL::INTEGER AS os, NULL::INTEGER AS rendition,
  NULL::INTEGER AS country, NULL::INTEGER AS cdn, NULL::INTEGER AS hour_no,
  0.0 AS watch_time_s,
  NULL::BIGINT AS startup_time_ms, 0 AS rebuffer_count, 0 AS rebuffer_ms, 0 AS watched_ms,
  false AS exited_before_start, false AS playback_failed,
  NULL::DOUBLE AS average_bitrate, NULL::DOUBLE AS weighted_bitrate,
  NULL::DOUBLE AS viewer_experience_score, NULL::INTEGER AS asset_id
WHERE false"""


def _empty(names: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {n: (0 if METRICS[n].zero_when_empty else None) for n in names}
    out["views"] = 0
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, Decimal):
        return float(value)
    return value


def breakdown(
    lake: Lake, scope: ViewScope, q: MetricsQuery, metrics: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    """The metrics of ``scope``'s views in ``q``'s range, grouped as ``q`` says (blocking)."""
    for name in metrics or ():
        if name not in METRICS:
            known = ", ".join(METRICS)
            raise MetricsQueryError(f"Unknown metric {name!r}: one of {known}.")
    with Breakdowns(lake, scope, q.start, q.end, materialize=False) as b:  # grouped once
        return b.rows(q, metrics)
