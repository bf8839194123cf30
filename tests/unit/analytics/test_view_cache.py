"""The metrics' view cache over a real lake (LocalStore, DuckDB): a range opens only its
hours' event files (and their neighbours'), a file that lands is counted at once, a view
that began before the range is not in it, and closed days become one cache file."""

from __future__ import annotations

import asyncio
import contextlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from mediaplane.analytics import (
    Breakdowns,
    Intake,
    Lake,
    MetricsQuery,
    ViewCache,
    ViewScope,
    parse_batch,
    run_flusher,
)
from mediaplane.storage import LocalStore

T = datetime(2026, 5, 28, 20, 0, tzinfo=UTC).replace(tzinfo=None)  # a closed day (long past)
SCOPE = ViewScope(["pb"], ["asset"])


def _land(lake: Lake, view: str, start: datetime, seconds: int = 30, *, flush: bool = True) -> None:
    ms = int(start.replace(tzinfo=UTC).timestamp() * 1000)
    events: list[dict[str, Any]] = [
        {"id": "s", "type": "view_start", "ts": ms},
        {"id": "f", "type": "first_frame", "ts": ms + 500, "startup_ms": 500},
        {"id": "h", "type": "heartbeat", "ts": ms + seconds * 1000, "watched_ms": 4000},
    ]
    raw = json.dumps(
        {"view_id": view, "playback_id": "pb", "player": {"name": "shaka"}, "events": events}
    ).encode()
    batch, good, _ = parse_batch(raw)
    end = ms + seconds * 1000
    lake.add_events(
        Intake(10**12).rows(batch, good, end, viewer=view, address=None, user_agent=None)
    )
    if flush:
        assert lake.flush() == 3


def _views(lake: Lake, start: datetime, end: datetime) -> tuple[int, int]:
    with Breakdowns(lake, SCOPE, start, end) as b:
        row = b.rows(MetricsQuery(start, end))[0]
        return row["views"], b.cache.computed


def test_ranges_open_only_their_hours_and_landed_files_count_at_once(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "objects")
    lake = Lake(store, tmp_path / "work")
    _land(lake, "a", T + timedelta(minutes=10))
    # not Parquet at all: any query that opened it would fail
    junk = tmp_path / "junk.parquet"
    junk.write_bytes(b"not parquet")
    store.put_file("analytics/events/date=2026-05-20/hour=00/part-junk.parquet", junk)

    day = (T.replace(hour=0), T.replace(hour=0) + timedelta(days=1))
    assert _views(lake, *day) == (1, 1)  # the hour computed once
    assert _views(lake, *day) == (1, 0)  # then read from the cache
    with pytest.raises(duckdb.Error):  # a range over the junk's hour does open it
        _views(lake, T - timedelta(days=8, hours=20), T - timedelta(days=7, hours=20))

    # a view that began a minute before the range and plays into it is not the range's
    _land(lake, "b", T - timedelta(minutes=1), seconds=120)
    assert _views(lake, T, T + timedelta(hours=1)) == (1, 2)  # 19h and 20h computed again
    assert _views(lake, T - timedelta(hours=1), T) == (1, 0)
    # another file lands in the hour: counted at once (its files are the cache's key)
    _land(lake, "c", T + timedelta(minutes=40))
    assert _views(lake, *day)[0] == 3

    # the closed day is one cache file; hours of today stay hour files
    cached = sorted(
        p.relative_to(tmp_path / "work" / "views").parts[0]
        for p in (tmp_path / "work" / "views").rglob("*.parquet")
    )
    assert set(cached) == {"day=2026-05-28"}  # (superseded ones linger a while)
    now = datetime.now(UTC).replace(tzinfo=None) - timedelta(minutes=1)
    _land(lake, "d", now)
    assert _views(lake, now - timedelta(hours=1), now + timedelta(hours=1))[0] == 1
    hour = now.strftime("%Y-%m-%dT%H")
    assert list((tmp_path / "work" / "views" / f"hour={hour}").glob("*.parquet"))


def test_after_a_flush_a_warm_cache_has_its_current_hours_computed(tmp_path: Path) -> None:
    lake = Lake(LocalStore(tmp_path / "objects"), tmp_path / "work")
    cache = ViewCache(lake)
    now = datetime.now(UTC).replace(tzinfo=None)
    around = (now - timedelta(hours=2), now + timedelta(hours=1))
    _land(lake, "a", now - timedelta(minutes=1))
    assert not cache.refresh() and cache.computed == 0  # no page read it: left alone
    assert _views(lake, *around) == (1, 1)  # the page computed its hour

    _land(lake, "b", now - timedelta(seconds=40))  # a flush landed (as the flusher does)
    assert cache.refresh() and cache.computed >= 1
    assert _views(lake, *around) == (2, 0)  # the page found it ready


async def test_the_flusher_computes_the_hours_of_a_warm_cache(tmp_path: Path) -> None:
    lake = Lake(LocalStore(tmp_path / "objects"), tmp_path / "work", flush_rows=3)
    views = tmp_path / "work" / "views"
    now = datetime.now(UTC).replace(tzinfo=None)
    around = (now - timedelta(hours=2), now + timedelta(hours=1))
    _land(lake, "a", now - timedelta(minutes=1))
    assert _views(lake, *around) == (1, 1)  # a page read it: warm
    before = set(views.rglob("*.parquet"))
    hours = {(now - timedelta(seconds=s)).strftime("%H") for s in (60, 40)}
    task = asyncio.create_task(run_flusher(lake))
    try:
        _land(lake, "b", now - timedelta(seconds=40), flush=False)  # a flush's worth: due
        for _ in range(200):  # every hour the new file changed, computed by the flusher
            if len(set(views.rglob("*.parquet")) - before) == len(hours):
                break
            await asyncio.sleep(0.05)
        assert lake.stats.rows_landed == 6
        assert _views(lake, *around) == (2, 0)  # the page found them ready
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
