"""The metrics' in-memory views (one process-wide DuckDB database holding the view cache's
files as tables): each file loaded once, a superseded or deleted one dropped, the least
recently read ones dropped past the cap, and the numbers those of the files."""

from __future__ import annotations

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
    ViewScope,
    _metrics,
    parse_batch,
)
from mediaplane.analytics._metrics import METRICS
from mediaplane.storage import LocalStore

T = datetime(2026, 5, 28, 20, 0, tzinfo=UTC).replace(tzinfo=None)  # a closed day
SCOPE = ViewScope(["pb"], ["asset"])


def _land(lake: Lake, view: str, start: datetime, startup_ms: int) -> None:
    ms = int(start.replace(tzinfo=UTC).timestamp() * 1000)
    events: list[dict[str, Any]] = [
        {"id": "s", "type": "view_start", "ts": ms},
        {"id": "f", "type": "first_frame", "ts": ms + startup_ms, "startup_ms": startup_ms},
        {"id": "h", "type": "heartbeat", "ts": ms + 30_000, "watched_ms": 4000},
    ]
    raw = json.dumps(
        {"view_id": view, "playback_id": "pb", "player": {"name": "shaka"}, "events": events}
    ).encode()
    batch, good, _ = parse_batch(raw)
    lake.add_events(
        Intake(10**12).rows(batch, good, ms + 30_000, viewer=view, address=None, user_agent=None)
    )
    assert lake.flush() == 3


def _held(root: Path) -> list[str]:
    """The memory's files under ``root`` (other tests' lakes share the process's memory)."""
    mem = _metrics._memory()
    return sorted(k[0] for k in mem.tables if k[0].startswith(str(root)))


def test_files_held_once_superseded_and_gone_dropped(tmp_path: Path) -> None:
    lake = Lake(LocalStore(tmp_path / "objects"), tmp_path / "work")
    day = (T.replace(hour=0), T.replace(hour=0) + timedelta(days=1))
    _land(lake, "a", T + timedelta(minutes=10), 400)
    with Breakdowns(lake, SCOPE, *day) as b:
        assert b.rows(MetricsQuery(*day))[0]["views"] == 1
    held = _held(tmp_path)
    assert len(held) == 1 and "/day=2026-05-28/" in held[0]
    with Breakdowns(lake, SCOPE, *day) as b:  # read from memory: the same table
        assert b.rows(MetricsQuery(*day))[0]["views"] == 1
    assert _held(tmp_path) == held

    # a file lands: the day's new cache file is loaded, the superseded one's table dropped
    _land(lake, "b", T + timedelta(minutes=20), 900)
    _land(lake, "c", T + timedelta(minutes=30), 2000)
    with Breakdowns(lake, SCOPE, *day) as b:
        row = b.rows(MetricsQuery(*day))[0]
        # the percentiles, computed together, are those of the views' startup times
        want = (
            duckdb.connect()
            .execute(
                "SELECT quantile_cont(x, 0.5), quantile_cont(x, 0.95) FROM "
                "(VALUES (400), (900), (2000)) t(x)"
            )
            .fetchone()
        )
        assert want is not None
        assert (row["views"], row["startup_time_p50"], row["startup_time_p95"]) == (
            3,
            *(round(x, 6) for x in want),
        )
        alone = b.rows(MetricsQuery(*day), ["startup_time_p95"])[0]
        assert alone["startup_time_p95"] == row["startup_time_p95"]
        assert set(b.rows(MetricsQuery(*day))[0]) == {"group", *METRICS}
    now_held = _held(tmp_path)
    assert len(now_held) == 1 and now_held != held

    # another day read, then this one's file gone: its table goes at the next read
    other = (day[0] - timedelta(days=1), day[0])
    _land(lake, "d", other[0] + timedelta(hours=3), 500)
    with Breakdowns(lake, SCOPE, *other) as b:
        assert b.rows(MetricsQuery(*other))[0]["views"] == 1
    assert len(_held(tmp_path)) == 2
    Path(now_held[0]).unlink()
    with Breakdowns(lake, SCOPE, *other) as b:
        assert b.rows(MetricsQuery(*other))[0]["views"] == 1
    assert [h for h in _held(tmp_path) if h in now_held] == []


def test_least_recently_read_dropped_past_the_cap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake = Lake(LocalStore(tmp_path / "objects"), tmp_path / "work")
    days = [(T.replace(hour=0) - timedelta(days=d), T.replace(hour=0) - timedelta(days=d - 1))
            for d in (3, 2)]  # fmt: skip
    for i, (frm, _) in enumerate(days):
        _land(lake, f"v{i}", frm + timedelta(hours=5), 700)
    monkeypatch.setattr(_metrics, "MEMORY_VIEWS", 1)  # one view held at most
    for frm, to in days:
        with Breakdowns(lake, SCOPE, frm, to) as b:
            assert b.rows(MetricsQuery(frm, to))[0]["views"] == 1
    held = _held(tmp_path)
    assert len(held) == 1 and days[1][0].strftime("day=%Y-%m-%d") in held[0]
    # a range over both needs both: held for it even past the cap (and the viewers'
    # numbers, past the cap too, start over with the tables)
    with Breakdowns(lake, SCOPE, days[0][0], days[1][1]) as b:
        row = b.rows(MetricsQuery(days[0][0], days[1][1]))[0]
        assert (row["views"], row["unique_viewers"]) == (2, 2)
    assert len(_held(tmp_path)) == 2
    assert _metrics._memory().viewers == 2


def test_a_view_over_the_tables_keeps_them_until_closed(tmp_path: Path) -> None:
    lake = Lake(LocalStore(tmp_path / "objects"), tmp_path / "work")
    day = (T.replace(hour=0), T.replace(hour=0) + timedelta(days=1))
    _land(lake, "a", T + timedelta(minutes=10), 400)
    mem = _metrics._memory()
    with Breakdowns(lake, SCOPE, *day, materialize=False) as lazy:
        [old] = _held(tmp_path)
        table = mem.tables[next(k for k in mem.tables if k[0] == old)][0]
        _land(lake, "b", T + timedelta(minutes=20), 900)
        with Breakdowns(lake, SCOPE, *day) as b:  # supersedes the table the view reads
            assert b.rows(MetricsQuery(*day))[0]["views"] == 2
        assert old not in _held(tmp_path) and table in mem.doomed
        assert lazy.rows(MetricsQuery(*day, "player"))[0]["views"] == 1  # still there
    assert table not in mem.doomed and table not in mem.pins
    names = mem.con.execute("SELECT table_name FROM duckdb_tables()").fetchall()
    assert (table,) not in names
