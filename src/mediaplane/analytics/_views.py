"""View sessions and their QoE, computed by DuckDB from the lake's Parquet files.

A view is one ``view_id``: the events a player sent for it (each ``(view_id, event_id)``
counted once, however often it was sent) and the CMCD requests whose ``sid`` names it.

Fields (one row per view):

- ``startup_time_ms``: the first ``first_frame`` event's ``startup_ms`` (none: no frame yet);
- ``watch_time_s``: the largest running total ``watched_ms`` sent, in seconds;
- ``rebuffer_count``: ``rebuffer_start`` events; ``rebuffer_ms``: the sum of
  ``rebuffer_end`` durations; ``rebuffer_ratio``: rebuffer_ms / (rebuffer_ms + watched ms);
- ``errors``: ``error`` events (``error_codes`` lists their codes, ``fatal_error`` if any
  was fatal);
- ``average_bitrate``: the mean bitrate of the heartbeats and switches that name one (bits/s;
  heartbeats come at a steady pace, so it is about time-weighted);
- ``renditions``: every rendition named;
- ``country``: the viewer's country as the rights checks saw it (None: unknown); ``cdn``:
  a host the view's media segments came from, as the player reported it;
- ``cmcd_requests``, ``cmcd_average_bitrate_kbps``, ``cmcd_buffer_starved``: from the
  requests the player's CMCD names the view in.

Given a date range, only the lake's ``date=`` partitions in it are read (partition pruning:
the files of other days are neither fetched nor opened).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import duckdb

from ._lake import Lake
from ._metrics import per_view_sql

__all__ = ["list_views"]

#: The views (:func:`per_view_sql`: the metrics' and dbt's definitions, each view that
#: started in the files read) with the CMCD requests that name them, newest first.
_VIEWS = """
WITH views AS ({views})
SELECT views.*, c.requests AS cmcd_requests, c.br AS cmcd_average_bitrate_kbps,
       c.starved AS cmcd_buffer_starved
FROM views LEFT JOIN ({cmcd}) c ON c.sid = views.view_id
ORDER BY started_at DESC, view_id
LIMIT $limit
"""
#: What a row of :data:`_VIEWS` says under another name in the API.
_RENAMED = {"player_name": "player", "last_ts": "last_event_at"}
#: The API's fields of a row of :data:`_VIEWS` (the rest serve the metrics).
_FIELDS = (
    "view_id", "playback_id", "viewer", "player_name", "player_version", "country", "cdn",
    "started_at", "last_ts", "startup_time_ms", "rebuffer_count", "rebuffer_ms", "errors",
    "error_codes", "average_bitrate", "renditions", "ended", "events", "cmcd_requests",
    "cmcd_average_bitrate_kbps", "cmcd_buffer_starved",
)  # fmt: skip
#: Every view the files hold started in this range (the files are the range; naive UTC).
_EVER = tuple(datetime(y, 1, 1, tzinfo=UTC).replace(tzinfo=None) for y in (1, 9999))
_CMCD = """
SELECT cmcd_sid AS sid, count(*) AS requests, avg(cmcd_br) AS br,
       coalesce(bool_or(cmcd_bs), false) AS starved
FROM read_parquet($cmcd, union_by_name = true)
WHERE playback_id IN (SELECT unnest($playback_ids)) AND cmcd_sid IS NOT NULL
GROUP BY cmcd_sid
"""
_NO_CMCD = "SELECT NULL::VARCHAR AS sid, 0 AS requests, NULL::DOUBLE AS br, false AS starved"


def _iso(value: Any) -> Any:
    return value.isoformat() + "Z" if isinstance(value, datetime) else value


def list_views(
    lake: Lake,
    playback_ids: list[str],
    limit: int = 100,
    *,
    since: date | None = None,
    until: date | None = None,
) -> list[dict[str, Any]]:
    """The views of these playback ids, newest first, with their QoE fields (blocking).

    :param since, until: only the events (and CMCD requests) of these UTC days, both
        included: only those ``date=`` partitions are read. A view that crosses the range's
        edge counts with its part inside.
    """
    if not playback_ids:
        return []
    events = lake.files("events", since=since, until=until)
    if not events:
        return []
    cmcd = lake.files("cmcd", since=since, until=until)
    views = per_view_sql(detail=True)
    sql = _VIEWS.replace("{views}", views).replace("{cmcd}", _CMCD if cmcd else _NO_CMCD)
    params: dict[str, Any] = {
        "events": events,
        "playback_ids": playback_ids,
        "asset_ids": [None] * len(playback_ids),
        "from": _EVER[0],
        "to": _EVER[1],
        "limit": limit,
    }
    if cmcd:
        params["cmcd"] = cmcd
    con = duckdb.connect()
    try:
        cur = con.execute(sql, params)
        names = [d[0] for d in cur.description or ()]
        rows = cur.fetchall()
    finally:
        con.close()
    out = []
    for row in rows:
        got = dict(zip(names, row, strict=True))
        r = {_RENAMED.get(k, k): got[k] for k in _FIELDS}
        watched, stalled = got["watched_ms"], r["rebuffer_ms"]
        r["watch_time_s"] = watched / 1000
        r["rebuffer_ratio"] = round(stalled / (stalled + watched), 4) if stalled + watched else 0.0
        r["fatal_error"] = got["fatal_errors"] > 0
        if r["average_bitrate"] is not None:
            r["average_bitrate"] = round(r["average_bitrate"])
        if r["cmcd_average_bitrate_kbps"] is not None:
            r["cmcd_average_bitrate_kbps"] = round(r["cmcd_average_bitrate_kbps"])
        r["cmcd_requests"] = r["cmcd_requests"] or 0
        r["cmcd_buffer_starved"] = bool(r["cmcd_buffer_starved"])
        r["renditions"] = sorted(r["renditions"] or [])
        r["error_codes"] = sorted(r["error_codes"] or [])
        out.append({k: _iso(v) for k, v in r.items()})
    return out
