"""The lake: accepted beacon events and CMCD request records, buffered in memory and
landed as Parquet files in the object store, partitioned by date and hour::

    analytics/events/date=YYYY-MM-DD/hour=HH/part-<uuid>.parquet
    analytics/cmcd/date=YYYY-MM-DD/hour=HH/part-<uuid>.parquet

A :class:`Lake` per process takes rows from the beacon route and the origin (an append to
a list under a lock: no I/O on the request path) and a flusher writes them every
``lake_flush_seconds``, or at once when ``lake_flush_rows`` wait: DuckDB reads the buffer
(as CSV) and writes one Parquet file per hour partition, which goes to the store. Files are
never rewritten; any warehouse loads them as they are (hive partitioning).

The buffer is bounded (``lake_buffer_rows``): past it new batches are refused with
:class:`LakeBusy` (the player sends them again) and CMCD records are dropped (counted).
A write that fails keeps its rows for the next try.

Replays: event ids seen recently (per view) are remembered (:data:`DEDUPE_IDS` of them) and
a repeated event is not buffered again; what gets past that (a replay after a restart, or
to another web process) is removed when the lake is read (:func:`._views.list_views`): each
``(view_id, event_id)`` counts once.
"""

from __future__ import annotations

import csv
import io
import shutil
import tempfile
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import structlog

from ._beacons import EVENT_COLUMNS
from ._cmcd import CMCD_KEYS, cmcd_of_request
from ._errors import InvalidCmcd, LakeBusy

if TYPE_CHECKING:
    from mediaplane.runtime import Runtime
    from mediaplane.storage import ObjectStore

__all__ = [
    "CMCD_COLUMNS",
    "DEDUPE_IDS",
    "Lake",
    "LakeStats",
    "lake_of",
    "no_rows_sql",
    "partition_date",
]

log = structlog.get_logger("mediaplane.analytics.lake")

PREFIX = "analytics/"
#: Recent (view, event) ids remembered per process to drop a replayed batch.
DEDUPE_IDS = 200_000

#: The CMCD dataset's columns (then one per reserved CMCD key, see :data:`CMCD_COLUMNS`).
_CMCD_FIXED: dict[str, str] = {
    "received_ms": "BIGINT",
    "playback_id": "VARCHAR",
    "request": "VARCHAR",  # master, media, mpd, segment
    "rendition": "VARCHAR",
    "object": "VARCHAR",
    "status": "INTEGER",  # the answer's HTTP status
    "invalid": "BOOLEAN",  # the request's CMCD broke the grammar (its keys are null)
}
_SQL_TYPES = {
    "int": "BIGINT",
    "float": "DOUBLE",
    "bool": "BOOLEAN",
    "str": "VARCHAR",
    "token": "VARCHAR",
}
CMCD_COLUMNS: dict[str, str] = {
    **_CMCD_FIXED,
    **{f"cmcd_{k}": _SQL_TYPES[t] for k, t in CMCD_KEYS.items()},
}

#: A CMCD capture as the origin hands it over, parsed only when written:
#: (received ms, playback id, request, rendition, object, status, query string, CMCD headers).
Capture = tuple[int, str, str, str | None, str | None, int, bytes, list[tuple[bytes, bytes]]]


@dataclass
class LakeStats:
    accepted: int = 0
    duplicates: int = 0
    refused_busy: int = 0
    cmcd_captured: int = 0
    cmcd_dropped: int = 0
    files_written: int = 0
    rows_landed: int = 0
    flush_failures: int = 0


#: Buffered millisecond columns and the timestamp column each becomes in the Parquet files.
_TIMESTAMPS = {"ts_ms": "ts", "received_ms": "received_at"}


def _timestamp_sql(ms: str) -> str:
    return f"make_timestamp({ms} * 1000)"


def _select(columns: dict[str, str], ts: str) -> str:
    """The SELECT that turns buffered columns into the Parquet layout: the millisecond
    columns become UTC timestamps, and the hour partition comes from ``ts``."""
    parts = [
        f"{_timestamp_sql(name)} AS {_TIMESTAMPS[name]}" if name in _TIMESTAMPS else name
        for name in columns
    ]
    parts.append(f"strftime({_timestamp_sql(ts)}, '%Y-%m-%d') AS date")
    parts.append(f"strftime({_timestamp_sql(ts)}, '%H') AS hour")
    return ", ".join(parts)


def no_rows_sql(dataset: str) -> str:
    """SQL: no rows, with every column of ``dataset``'s files (``events``, ``cmcd``) typed
    as the lake writes them. Read ``UNION ALL BY NAME`` in front of the files, a column
    that older files lack reads as NULL, even where no file has it yet (the dbt project's
    ``lake_columns`` var is the same layout)."""
    columns = EVENT_COLUMNS if dataset == "events" else CMCD_COLUMNS
    typed = ", ".join(
        f"NULL::TIMESTAMP AS {_TIMESTAMPS[name]}" if name in _TIMESTAMPS else f"NULL::{t} AS {name}"
        for name, t in columns.items()
    )
    return f"SELECT {typed} WHERE false"


def _columns_sql(columns: dict[str, str]) -> str:
    return "{" + ", ".join(f"'{k}': '{v}'" for k, v in columns.items()) + "}"


class Lake:
    """One process's buffer in front of the lake.

    :param store: where the Parquet files go.
    :param work_dir: scratch space for writes, and the cache of remote files read.
    :param buffer_rows: rows held at most (events and CMCD records each).
    :param flush_rows: a flush starts at once when this many rows wait.
    :param flush_seconds: rows wait at most this long before a flush.
    """

    def __init__(
        self,
        store: ObjectStore,
        work_dir: Path,
        *,
        buffer_rows: int = 100_000,
        flush_rows: int = 20_000,
        flush_seconds: float = 5.0,
    ) -> None:
        self.store = store
        self.work_dir = work_dir
        self.buffer_rows = buffer_rows
        self.flush_rows = min(flush_rows, buffer_rows)
        self.flush_seconds = flush_seconds
        self.stats = LakeStats()
        self._events: list[tuple[Any, ...]] = []
        self._cmcd: list[Capture] = []
        self._oldest = 0.0
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        #: dataset → {key: its local path (None: remote)} as last listed (files are
        #: immutable: a key's path is asked of the store once, not on every read)
        self._paths: dict[str, dict[str, Path | None]] = {}

    # -- taking rows (request path: memory only) ------------------------------------------

    def add_events(self, rows: list[tuple[Any, ...]]) -> tuple[int, int]:
        """Buffer event rows (columns of :data:`EVENT_COLUMNS`); returns (taken, duplicates).

        :raises LakeBusy: the buffer has no room for them (nothing is taken).
        """
        with self._lock:
            if len(self._events) + len(rows) > self.buffer_rows:
                self.stats.refused_busy += 1
                raise LakeBusy("The analytics buffer is full; send the batch again shortly.")
            taken = 0
            for row in rows:
                key = f"{row[1]}\0{row[0]}"
                if key in self._seen:
                    continue
                self._seen[key] = None
                if not self._events and not self._cmcd:
                    self._oldest = time.monotonic()
                self._events.append(row)
                taken += 1
            while len(self._seen) > DEDUPE_IDS:
                self._seen.popitem(last=False)
            self.stats.accepted += taken
            self.stats.duplicates += len(rows) - taken
        return taken, len(rows) - taken

    def capture(self, capture: Capture) -> None:
        """Buffer one request's CMCD, unparsed (dropped, and counted, when full)."""
        with self._lock:
            if len(self._cmcd) >= self.buffer_rows:
                self.stats.cmcd_dropped += 1
                return
            if not self._events and not self._cmcd:
                self._oldest = time.monotonic()
            self._cmcd.append(capture)
            self.stats.cmcd_captured += 1

    def due(self) -> bool:
        """Whether a flush should start now."""
        with self._lock:
            waiting = len(self._events) + len(self._cmcd)
            if not waiting:
                return False
            return (
                waiting >= self.flush_rows or time.monotonic() - self._oldest >= self.flush_seconds
            )

    def pending(self) -> int:
        with self._lock:
            return len(self._events) + len(self._cmcd)

    # -- landing (a thread) ---------------------------------------------------------------

    def flush(self) -> int:
        """Write what is buffered as Parquet into the store; returns the rows landed.
        Rows of a write that failed go back to the buffer (and it raises)."""
        with self._flush_lock:
            with self._lock:
                events, self._events = self._events, []
                cmcd, self._cmcd = self._cmcd, []
            landed = 0
            try:
                if events:
                    landed += self._write("events", EVENT_COLUMNS, events, "ts_ms")
                    events = []
                if cmcd:
                    landed += self._write("cmcd", CMCD_COLUMNS, _cmcd_rows(cmcd), "received_ms")
                    cmcd = []
            except Exception:
                self.stats.flush_failures += 1
                with self._lock:  # back in front, for the next try
                    self._events[:0] = events
                    self._cmcd[:0] = cmcd
                    self._oldest = time.monotonic()
                raise
            self.stats.rows_landed += landed
            return landed

    def _write(
        self, dataset: str, columns: dict[str, str], rows: Iterable[tuple[Any, ...]], ts: str
    ) -> int:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f"flush-{dataset}-", dir=self.work_dir))
        try:
            text = io.StringIO()
            writer = csv.writer(text, lineterminator="\n")
            n = 0
            for row in rows:
                writer.writerow(row)
                n += 1
            if not n:
                return 0
            source = tmp / "rows.csv"
            source.write_text(text.getvalue(), encoding="utf-8")
            out = tmp / "out"
            con = duckdb.connect()
            try:
                con.execute(
                    f"COPY (SELECT {_select(columns, ts)} FROM read_csv(?, header=false, "
                    f"columns={_columns_sql(columns)}, nullstr='', quote='\"', escape='\"', "
                    "strict_mode=false)) "
                    f"TO '{out}' (FORMAT parquet, COMPRESSION zstd, PARTITION_BY (date, hour), "
                    "FILENAME_PATTERN 'part-{uuid}', WRITE_PARTITION_COLUMNS false)",
                    [str(source)],
                )
            finally:
                con.close()
            for path in sorted(out.rglob("*.parquet")):
                key = f"{PREFIX}{dataset}/{path.relative_to(out).as_posix()}"
                self.store.put_file(key, path)
                self.stats.files_written += 1
            return n
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    # -- reading --------------------------------------------------------------------------

    def files(
        self,
        dataset: str,
        *,
        since: date | None = None,
        until: date | None = None,
        on_file: Callable[[str], None] | None = None,
    ) -> list[str]:
        """Local paths of the Parquet files of ``dataset`` (remote ones are fetched once
        into the cache: files are immutable).

        :param since, until: only the ``date=`` partitions in this range (both included,
            UTC days): the others are neither fetched nor read.
        :param on_file: called with each file's key once it is at hand (progress).
        """
        out: list[str] = []
        cache = self.work_dir / "cache"
        listed: set[Path] = set()
        low = since.isoformat() if since is not None else ""
        high = until.isoformat() if until is not None else "9999-99-99"
        known = self._paths.get(dataset, {})
        paths: dict[str, Path | None] = {}
        for info in self.store.list(f"{PREFIX}{dataset}/"):
            if not info.key.endswith(".parquet"):
                continue
            local = known[info.key] if info.key in known else self.store.local_path(info.key)
            paths[info.key] = local
            if local is None:
                listed.add(cache / info.key)
            day = partition_date(info.key)
            if day is not None and not low <= day <= high:
                continue
            if local is None:
                local = cache / info.key
                if not local.is_file() or local.stat().st_size != info.size:
                    local.parent.mkdir(parents=True, exist_ok=True)
                    partial = local.with_name(local.name + f".{uuid.uuid4().hex[:8]}.part")
                    self.store.download(info.key, partial)
                    partial.replace(local)
            out.append(str(local))
            if on_file is not None:
                on_file(info.key)
        self._paths[dataset] = paths
        swept = cache / PREFIX / dataset
        if swept.is_dir():
            for old in swept.rglob("*.parquet"):
                if old not in listed:  # pruned from the store: gone from the cache too
                    old.unlink(missing_ok=True)
        return out

    def prune(self, before: str) -> int:
        """Delete the partitions of days before ``before`` (``YYYY-MM-DD``) of every
        dataset; returns the files deleted."""
        deleted = 0
        for dataset in ("events", "cmcd"):
            for info in list(self.store.list(f"{PREFIX}{dataset}/")):
                day = partition_date(info.key)
                if day is not None and day < before:
                    self.store.delete(info.key)
                    deleted += 1
        return deleted


def partition_date(key: str) -> str | None:
    """The ``YYYY-MM-DD`` of a lake key's ``date=`` partition (None: not in one)."""
    for part in key.split("/"):
        if part.startswith("date=") and len(part) == 15:
            return part[5:]
    return None


def _cmcd_rows(captures: list[Capture]) -> Iterable[tuple[Any, ...]]:
    keys = list(CMCD_KEYS)
    for received, playback_id, request, rendition, obj, status, query, headers in captures:
        try:
            values = cmcd_of_request(query, headers)
            invalid = False
        except InvalidCmcd:
            values, invalid = {}, True
        cells: list[Any] = [received, playback_id, request, rendition, obj, status]
        cells.append(str(invalid).lower())
        for k in keys:
            v = values.get(k)
            cells.append(str(v).lower() if isinstance(v, bool) else v)
        yield tuple(cells)


def _make_lake(rt: Runtime) -> Lake:
    s = rt.settings
    return Lake(
        rt.store,
        s.data_path / "analytics",
        buffer_rows=s.lake_buffer_rows,
        flush_rows=s.lake_flush_rows,
        flush_seconds=s.lake_flush_seconds,
    )


def lake_of(rt: Runtime) -> Lake:
    """This process's lake for the runtime (made on first use)."""
    return rt.shared(_make_lake)
