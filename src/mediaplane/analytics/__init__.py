"""Analytics: how viewers experienced playback.

Players post QoE beacons (``POST /api/v1/beacons``: view start, first frame, rebuffering,
rendition switches, errors, seeks, pauses, ends, heartbeats) and send CMCD (CTA-5004) on
their manifest and segment requests, which :class:`CmcdTap` notes in front of the origin.
Both land in the lake (:mod:`._lake`): Parquet files in the object store, partitioned by
date and hour (``analytics/{events,cmcd}/date=…/hour=…/part-….parquet``), batched in
memory and written by DuckDB; ``GET /api/v1/data/views`` reads them with DuckDB, and so does
``GET /api/v1/data/metrics/{metric}`` (:mod:`._metrics`: the dbt models' QoE definitions,
broken down by player, browser, OS, rendition, asset or time; the dashboards' numbers). Viewers
are pseudonymised with a keyed hash (:func:`ensure_analytics_key`; a signed-in account on
our own pages by :func:`account_viewer_id`), addresses truncated.

Flow: beacon route → :class:`BeaconIntake` (schema, limits, clock, pseudonyms) →
:class:`Lake` buffer → flusher task (:func:`run_flusher`) → store. The intake also feeds the
real-time tracker (:mod:`._realtime`: :class:`InProcessRealtime`, or :class:`RedisRealtime`
when Redis is configured) behind ``GET /api/v1/data/realtime``: concurrent viewers and live
QoE of an asset or a live stream, counted as beacons arrive. Why beacons do not go
through the events outbox: docs/decisions/0009-beacons-bypass-the-outbox.md.

Export (:mod:`._export`, ``mediaplane analytics export``): a date range of the lake as one
Parquet or CSV file for other tools.

Warehouse (:mod:`._warehouse`): the dbt project in ``analytics/dbt`` (staging and marts:
views, watch time, unique viewers, QoE, a viewer-experience score) built over the lake with
dbt-duckdb into ``<data-dir>/analytics/warehouse.duckdb`` by :func:`build_warehouse`
(``mediaplane analytics build``; the ``analytics.build`` job on a schedule), whose data
tests are the quality gate (a failing one emits ``analytics.quality_failed``).

Errors::

    AnalyticsError
    ├── InvalidBeacon    400 invalid_beacon: the batch's envelope is bad
    ├── InvalidCmcd      a CMCD field breaks the grammar (recorded as invalid, never raised
    │                    to a player); also a ValueError
    ├── RateLimited      429 rate_limited with Retry-After: a viewer or address over its share
    └── LakeBusy         503 analytics_busy: the buffer is full, send again later
"""

from __future__ import annotations

from ._api import metrics_csv, metrics_scope, router
from ._beacons import (
    EVENT_COLUMNS,
    MAX_EVENTS,
    Batch,
    BeaconEvent,
    EventKind,
    Intake,
    Pseudonymizer,
    parse_batch,
)
from ._cmcd import CMCD_HEADERS, CMCD_KEYS, CmcdValue, cmcd_of_request, parse_cmcd
from ._errors import AnalyticsError, InvalidBeacon, InvalidCmcd, LakeBusy, RateLimited
from ._export import Exported, ExportFormat, ExportKind, export_lake
from ._flusher import run_flusher
from ._identity import account_viewer_id, ensure_analytics_key
from ._lake import CMCD_COLUMNS, Lake, LakeStats, lake_of, partition_date
from ._limits import InProcessRate, Rate, RedisRate
from ._metrics import (
    DIMENSIONS,
    METRICS,
    Breakdowns,
    MetricsQuery,
    MetricsQueryError,
    ViewCache,
    ViewScope,
    breakdown,
    prune_lake,
)
from ._realtime import (
    InProcessRealtime,
    Realtime,
    RealtimeFigures,
    RedisRealtime,
    ViewUpdate,
    realtime_of,
    realtime_view,
    view_update,
)
from ._service import BeaconIntake, Receipt, beacon_intake
from ._tap import CmcdTap
from ._views import list_views
from ._warehouse import (
    DBT_PROJECT,
    BuildAnalytics,
    DbtStep,
    WarehouseBuild,
    build_gave_up,
    build_job,
    build_warehouse,
    report_build,
    schedule_build,
    warehouse_path,
)

__all__ = [
    "DIMENSIONS",
    "METRICS",
    "Breakdowns",
    "MetricsQuery",
    "MetricsQueryError",
    "ViewCache",
    "ViewScope",
    "breakdown",
    "metrics_csv",
    "metrics_scope",
    "DBT_PROJECT",
    "BuildAnalytics",
    "DbtStep",
    "WarehouseBuild",
    "build_gave_up",
    "build_job",
    "build_warehouse",
    "report_build",
    "schedule_build",
    "warehouse_path",
    "CMCD_COLUMNS",
    "CMCD_HEADERS",
    "CMCD_KEYS",
    "EVENT_COLUMNS",
    "ExportFormat",
    "ExportKind",
    "Exported",
    "export_lake",
    "MAX_EVENTS",
    "AnalyticsError",
    "Batch",
    "BeaconEvent",
    "BeaconIntake",
    "CmcdTap",
    "CmcdValue",
    "EventKind",
    "InProcessRate",
    "InProcessRealtime",
    "Realtime",
    "RealtimeFigures",
    "RedisRealtime",
    "ViewUpdate",
    "realtime_of",
    "realtime_view",
    "view_update",
    "Intake",
    "InvalidBeacon",
    "InvalidCmcd",
    "Lake",
    "LakeBusy",
    "LakeStats",
    "Pseudonymizer",
    "RateLimited",
    "Rate",
    "Receipt",
    "RedisRate",
    "account_viewer_id",
    "beacon_intake",
    "cmcd_of_request",
    "ensure_analytics_key",
    "lake_of",
    "list_views",
    "parse_batch",
    "parse_cmcd",
    "partition_date",
    "prune_lake",
    "router",
    "run_flusher",
]
