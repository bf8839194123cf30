"""The lake's buffer: dedupe, bounds, partitioned Parquet written by DuckDB, a failed write
kept for the next try."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from mediaplane.analytics import (
    DBT_PROJECT,
    Intake,
    Lake,
    LakeBusy,
    list_views,
    parse_batch,
    prune_lake,
    run_flusher,
)
from mediaplane.analytics._lake import no_rows_sql
from mediaplane.config import Settings
from mediaplane.runtime import Runtime
from mediaplane.storage import LocalStore, ObjectInfo

NOW = 1_780_000_000_000  # 2026-05-28T20:26:40Z


def rows(view: str, n: int, start: int = 0, ts: int = NOW) -> list[tuple[Any, ...]]:
    events = [
        {"id": f"e{i}", "type": "heartbeat", "ts": ts, "watched_ms": i * 1000, "bitrate": 1000}
        for i in range(start, start + n)
    ]
    raw = json.dumps(
        {"view_id": view, "playback_id": "pb", "player": {"name": "shaka"}, "events": events}
    ).encode()
    batch, good, _ = parse_batch(raw)
    return Intake(10**12).rows(batch, good, ts, viewer="v", address=None, user_agent=None)


def test_replays_are_not_buffered_twice(tmp_path: Path) -> None:
    lake = Lake(LocalStore(tmp_path / "o"), tmp_path / "w")
    assert lake.add_events(rows("a", 3)) == (3, 0)
    assert lake.add_events(rows("a", 4)) == (1, 3)  # e0..e2 again, e3 new
    assert lake.add_events(rows("b", 2)) == (2, 0)  # same event ids, another view
    assert lake.flush() == 6 and lake.add_events(rows("a", 3)) == (0, 3)  # after a flush too


def test_a_full_buffer_refuses_the_batch_whole(tmp_path: Path) -> None:
    lake = Lake(LocalStore(tmp_path / "o"), tmp_path / "w", buffer_rows=5)
    lake.add_events(rows("a", 4))
    with pytest.raises(LakeBusy):
        lake.add_events(rows("b", 2))
    assert lake.pending() == 4 and lake.stats.refused_busy == 1
    for _ in range(6):  # CMCD has its own bound; beyond it records are dropped and counted
        lake.capture((NOW, "pb", "segment", "r", "s.m4s", 200, b"CMCD=br%3D1", []))
    assert (lake.stats.cmcd_captured, lake.stats.cmcd_dropped) == (5, 1)


def test_flush_writes_hour_partitions_that_duckdb_reads(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "o")
    lake = Lake(store, tmp_path / "w")
    lake.add_events(rows("a", 3, ts=NOW) + rows("b", 2, ts=NOW + 3_600_000))
    lake.capture((NOW, "pb", "segment", "720p", "1.m4s", 200, b"CMCD=sid%3D%22a%22%2Cbr%3D900", []))
    lake.capture((NOW, "pb", "segment", "720p", "2.m4s", 200, b"CMCD=br%3D%22x", []))
    assert lake.flush() == 7 and lake.pending() == 0
    keys = sorted(i.key.rsplit("/", 1)[0] for i in store.list("analytics/"))
    assert keys == [
        "analytics/cmcd/date=2026-05-28/hour=20",
        "analytics/events/date=2026-05-28/hour=20",
        "analytics/events/date=2026-05-28/hour=21",
    ]
    con = duckdb.connect()
    got = con.execute(
        "SELECT view_id, count(*), min(ts), any_value(hour) FROM read_parquet(?, "
        "hive_partitioning = true) GROUP BY view_id ORDER BY view_id",
        [lake.files("events")],
    ).fetchall()
    assert [(v, n, str(h)) for v, n, _, h in got] == [("a", 3, "20"), ("b", 2, "21")]
    cmcd = con.execute(
        "SELECT cmcd_sid, cmcd_br, invalid FROM read_parquet(?) ORDER BY object",
        [lake.files("cmcd")],
    ).fetchall()
    assert cmcd == [("a", 900, False), (None, None, True)]
    (view,) = [v for v in list_views(lake, ["pb"]) if v["view_id"] == "a"]
    assert view["cmcd_requests"] == 1 and view["watch_time_s"] == 2.0


def test_the_dbt_project_knows_every_column_the_lake_writes(tmp_path: Path) -> None:
    """The dbt var ``lake_columns`` and :func:`no_rows_sql` (the typed empty rows DuckDB
    reads the lake through, so a column older files lack reads as NULL) are the files' layout: a column added to
    EVENT_COLUMNS or CMCD_COLUMNS, or a type changed, fails here until it is added there."""
    yaml = pytest.importorskip("yaml")  # comes with dbt (the analytics extra)
    lake = Lake(LocalStore(tmp_path / "o"), tmp_path / "w")
    lake.add_events(rows("a", 1))
    lake.capture((NOW, "pb", "segment", "720p", "1.m4s", 200, b"CMCD=br%3D900", []))
    lake.flush()
    declared = yaml.safe_load((DBT_PROJECT / "dbt_project.yml").read_text())["vars"]
    con = duckdb.connect()
    for dataset in ("events", "cmcd"):
        [path] = lake.files(dataset)
        written = con.execute(
            "DESCRIBE SELECT * FROM read_parquet(?, hive_partitioning = false)", [path]
        ).fetchall()
        assert {r[0]: r[1] for r in written} == declared["lake_columns"][dataset], dataset
        # the Python readers' typed empty row is the same layout
        assert con.execute("DESCRIBE " + no_rows_sql(dataset)).fetchall() == written, dataset


def test_duplicates_that_reach_the_lake_count_once(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "o")
    for _ in range(2):  # two processes (or a restart) each landing the same batch
        lake = Lake(store, tmp_path / "w")
        lake.add_events(rows("a", 3))
        lake.flush()
    assert len(lake.files("events")) == 2
    (view,) = list_views(lake, ["pb"])
    assert view["events"] == 3


class FailingStore(LocalStore):
    fail = True

    def put_file(self, key: str, path: Path) -> ObjectInfo:
        if self.fail:
            raise OSError("store down")
        return super().put_file(key, path)


def test_a_failed_write_keeps_its_rows(tmp_path: Path) -> None:
    store = FailingStore(tmp_path / "o")
    lake = Lake(store, tmp_path / "w")
    lake.add_events(rows("a", 3))
    with pytest.raises(OSError, match="store down"):
        lake.flush()
    assert lake.pending() == 3 and lake.stats.flush_failures == 1
    store.fail = False
    assert lake.flush() == 3 and list(store.list("analytics/events/"))
    assert list((tmp_path / "w").iterdir()) == []  # scratch files are gone


async def test_the_flusher_lands_when_due_and_what_is_left_when_stopped(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "o")
    lake = Lake(store, tmp_path / "w", flush_rows=3, flush_seconds=3600)
    task = asyncio.create_task(run_flusher(lake))
    lake.add_events(rows("a", 3))  # a full flush's worth: landed without waiting the hour
    for _ in range(100):
        if lake.stats.rows_landed:
            break
        await asyncio.sleep(0.05)
    assert lake.stats.rows_landed == 3
    lake.add_events(rows("b", 1))  # not due: stays until the flusher stops
    await asyncio.sleep(0.3)
    assert lake.pending() == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert lake.pending() == 0 and lake.stats.rows_landed == 4


class RemoteLike(LocalStore):
    """A store without local paths, read by download (as S3 is)."""

    def local_path(self, key: str) -> Path | None:
        return None


def test_remote_files_are_cached_and_dropped_once_pruned(tmp_path: Path) -> None:
    store = RemoteLike(tmp_path / "o")
    lake = Lake(store, tmp_path / "w")
    lake.add_events(rows("a", 2))
    lake.flush()
    (path,) = lake.files("events")
    assert path.startswith(str(tmp_path / "w" / "cache")) and Path(path).is_file()
    assert list_views(lake, ["pb"])[0]["events"] == 2
    store.delete_prefix("analytics/events/")
    assert lake.files("events") == [] and not Path(path).exists()


def test_partitions_past_the_retention_are_pruned(tmp_path: Path) -> None:
    rt = Runtime(Settings(data_dir=tmp_path, analytics_retention_days=30))
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    old = (datetime.now(UTC) - timedelta(days=31)).strftime("%Y-%m-%d")
    for dataset in ("events", "cmcd"):
        for day in (old, today):
            rt.store.put_bytes(f"analytics/{dataset}/date={day}/hour=05/part-x.parquet", b"x")
    # the view cache's per-view rows of those days (pseudonyms, countries) go with them
    views = tmp_path / "analytics" / "views"
    for d in (f"hour={old}T05", f"day={old}", f"hour={today}T05", f"day={today}"):
        (views / d).mkdir(parents=True)
        (views / d / "k.parquet").write_bytes(b"x")
    assert prune_lake(rt) == 2
    left = sorted(i.key for i in rt.store.list("analytics/"))
    assert left == [
        f"analytics/{d}/date={today}/hour=05/part-x.parquet" for d in ("cmcd", "events")
    ]
    assert sorted(p.name for p in views.iterdir()) == [f"day={today}", f"hour={today}T05"]
