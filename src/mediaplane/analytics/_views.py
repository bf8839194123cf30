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

from datetime import date, datetime
from typing import Any

import duckdb

from ._lake import Lake

__all__ = ["list_views"]

_VIEWS = """
WITH e AS (
  -- files written before a column existed read it as NULL (and so does a lake of only those)
  SELECT * FROM (SELECT NULL::VARCHAR AS country, NULL::VARCHAR AS cdn LIMIT 0)
  UNION ALL BY NAME SELECT * FROM read_parquet($events, union_by_name = true)
  WHERE playback_id IN (SELECT unnest($playback_ids))
  QUALIFY row_number() OVER (PARTITION BY view_id, event_id ORDER BY received_at) = 1
), v AS (
  SELECT
    view_id,
    any_value(playback_id) AS playback_id,
    any_value(viewer) AS viewer,
    any_value(player_name) AS player_name,
    any_value(player_version) AS player_version,
    any_value(country) AS country,
    any_value(cdn) AS cdn,
    min(ts) AS started_at,
    max(ts) AS last_event_at,
    min(startup_ms) FILTER (WHERE type = 'first_frame') AS startup_time_ms,
    count(*) FILTER (WHERE type = 'rebuffer_start') AS rebuffer_count,
    coalesce(sum(duration_ms) FILTER (WHERE type = 'rebuffer_end'), 0) AS rebuffer_ms,
    coalesce(max(watched_ms), 0) AS watched_ms,
    count(*) FILTER (WHERE type = 'error') AS errors,
    list(DISTINCT code) FILTER (WHERE type = 'error' AND code IS NOT NULL) AS error_codes,
    coalesce(bool_or(fatal) FILTER (WHERE type = 'error'), false) AS fatal_error,
    avg(bitrate) FILTER (WHERE bitrate IS NOT NULL) AS average_bitrate,
    list(DISTINCT rendition) FILTER (WHERE rendition IS NOT NULL) AS renditions,
    bool_or(type = 'end') AS ended,
    count(*) AS events
  FROM e GROUP BY view_id
)
SELECT v.*, c.requests AS cmcd_requests, c.br AS cmcd_average_bitrate_kbps,
       c.starved AS cmcd_buffer_starved
FROM v LEFT JOIN ({cmcd}) c ON c.sid = v.view_id
ORDER BY started_at DESC, view_id
LIMIT $limit
"""
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
    sql = _VIEWS.replace("{cmcd}", _CMCD if cmcd else _NO_CMCD)
    params: dict[str, Any] = {"events": events, "playback_ids": playback_ids, "limit": limit}
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
        r = dict(zip(names, row, strict=True))
        watched, stalled = r.pop("watched_ms"), r["rebuffer_ms"]
        r["watch_time_s"] = watched / 1000
        r["rebuffer_ratio"] = round(stalled / (stalled + watched), 4) if stalled + watched else 0.0
        r["player"] = r.pop("player_name")
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
