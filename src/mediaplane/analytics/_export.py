"""``mediaplane analytics export``: a date range of the lake as one Parquet or CSV file, for
tools that load files (Airbyte's file source, a spreadsheet, ``bq load``, Snowflake's
``COPY INTO``).

Only the ``date=`` partitions in the range are fetched and read (:meth:`Lake.files`).
Beacon events are written once per ``(view_id, event_id)`` (a replayed batch counts once,
as in the views and the warehouse); CMCD records as they are. Each row keeps the lake's
columns plus its partition's ``date`` and ``hour``.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb

from ._beacons import EVENT_COLUMNS
from ._lake import CMCD_COLUMNS, Lake

__all__ = ["ExportFormat", "ExportKind", "Exported", "export_lake"]


class ExportFormat(enum.StrEnum):
    PARQUET = "parquet"
    CSV = "csv"


class ExportKind(enum.StrEnum):
    EVENTS = "events"  # beacon events
    CMCD = "cmcd"  # CMCD request records


@dataclass(frozen=True)
class Exported:
    rows: int
    files: int  # lake files read


_ORDER = {ExportKind.EVENTS: "ts, view_id, event_id", ExportKind.CMCD: "received_at"}
_DEDUPE = {
    ExportKind.EVENTS: "QUALIFY row_number() OVER "
    "(PARTITION BY view_id, event_id ORDER BY received_at) = 1",
    ExportKind.CMCD: "",
}


def export_lake(
    lake: Lake,
    since: date,
    until: date,
    out: Path,
    *,
    fmt: ExportFormat = ExportFormat.PARQUET,
    kind: ExportKind = ExportKind.EVENTS,
    on_file: Callable[[str], None] | None = None,
    on_progress: Callable[[float], None] | None = None,
) -> Exported:
    """Write the lake's ``kind`` rows of the days ``since``…``until`` (both included, UTC)
    to ``out`` (blocking). Nothing in the range: a file with the columns and no rows.

    :param on_file: called with each lake file's key as it is fetched.
    :param on_progress: called now and then with DuckDB's progress of the write (0–100).
    """
    files = lake.files(kind.value, since=since, until=until, on_file=on_file)
    out.parent.mkdir(parents=True, exist_ok=True)
    options = "FORMAT parquet, COMPRESSION zstd" if fmt is ExportFormat.PARQUET else "FORMAT csv"
    partial = out.with_name(out.name + ".part")
    source = (
        "SELECT * FROM read_parquet($files, union_by_name = true, hive_partitioning = true, "
        "hive_types = {'date': DATE, 'hour': INTEGER})"
        if files
        else _empty(kind)
    )
    sql = (
        f"COPY ({source} {_DEDUPE[kind]} ORDER BY {_ORDER[kind]}) "
        f"TO '{_quoted(partial)}' ({options})"
    )
    params = {"files": files} if files else {}
    con = duckdb.connect()
    done = threading.Event()

    def watch() -> None:  # DuckDB's own progress of the running COPY
        while not done.wait(0.2):
            value = con.query_progress()
            if value >= 0 and on_progress is not None:
                on_progress(value)

    watcher = threading.Thread(target=watch, name="export-progress", daemon=True)
    try:
        if on_progress is not None:
            watcher.start()
        row = con.execute(sql, params).fetchone()
    finally:
        done.set()
        if watcher.is_alive():
            watcher.join()
        con.close()
    partial.replace(out)
    if on_progress is not None:
        on_progress(100.0)
    return Exported(int(row[0]) if row else 0, len(files))


def _empty(kind: ExportKind) -> str:
    """A SELECT of no rows with the lake's columns (as the Parquet files have them)."""
    columns = EVENT_COLUMNS if kind is ExportKind.EVENTS else CMCD_COLUMNS
    names = {"ts_ms": "ts", "received_ms": "received_at"}
    cells = [
        f"NULL::TIMESTAMP AS {names[c]}" if c in names else f"NULL::{t} AS {c}"
        for c, t in columns.items()
    ]
    return f"SELECT {', '.join(cells)}, NULL::DATE AS date, NULL::INTEGER AS hour WHERE false"


def _quoted(path: Path) -> str:
    return str(path).replace("'", "''")
