"""Date ranges of the lake, only their partitions read: ``mediaplane analytics export`` (the
command itself, on a lake in a data dir) as Parquet or CSV, and the views query."""

from __future__ import annotations

import csv
import json
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
from typer.testing import CliRunner

from mediaplane.analytics import Intake, Lake, list_views, parse_batch
from mediaplane.cli import app
from mediaplane.storage import LocalStore

DAY = 86_400_000
NOV_1 = 1_793_491_200_000  # 2026-11-01T00:00:00Z


def rows(view: str, ts: int, n: int = 2) -> list[tuple[Any, ...]]:
    events = [{"id": f"e{i}", "type": "heartbeat", "ts": ts + i} for i in range(n)]
    raw = json.dumps(
        {"view_id": view, "playback_id": "pb", "player": {"name": "shaka"}, "events": events}
    ).encode()
    batch, good, _ = parse_batch(raw)
    return Intake(10**12).rows(batch, good, ts + n, viewer="v", address=None, user_agent=None)


def lake_in(data: Path) -> Lake:
    """Three days of events (Nov 1, 2, 3), a replay among them, and a CMCD record."""
    lake = Lake(LocalStore(data / "objects"), data / "analytics")
    for day in range(3):
        lake.add_events(rows(f"view{day}", NOV_1 + day * DAY + 3_600_000))
        lake.flush()
    again = Lake(LocalStore(data / "objects"), data / "analytics")  # another process: no
    again.add_events(rows("view1", NOV_1 + DAY + 3_600_000))  # memory of the first's ids
    again.capture((NOV_1 + DAY, "pb", "segment", "720p", "1.m4s", 200, b"CMCD=br%3D900", []))
    again.flush()
    return lake


def export(data: Path, *args: str) -> str:
    result = CliRunner().invoke(app, ["analytics", "export", "--data-dir", str(data), *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_a_date_range_goes_out_as_parquet_reading_only_its_partitions(tmp_path: Path) -> None:
    data = tmp_path / "data"
    lake = lake_in(data)
    seen: list[str] = []
    lake.files("events", since=None, until=None, on_file=seen.append)
    assert len(seen) == 4  # every file of the lake
    out = tmp_path / "nov2-3.parquet"
    said = export(data, "--from", "2026-11-02", "--to", "2026-11-03", "--out", str(out))
    assert "4 events rows from 3 lake files" in said  # view1's replay is one copy
    got = duckdb.sql(
        f"SELECT view_id, event_id, date::VARCHAR, hour FROM '{out}' ORDER BY ts"
    ).fetchall()
    assert got == [
        ("view1", "e0", "2026-11-02", 1),
        ("view1", "e1", "2026-11-02", 1),
        ("view2", "e0", "2026-11-03", 1),
        ("view2", "e1", "2026-11-03", 1),
    ]


def test_csv_cmcd_and_an_empty_range(tmp_path: Path) -> None:
    data = tmp_path / "data"
    lake_in(data)
    out = tmp_path / "cmcd.csv"
    args = ["--from", "2026-11-01", "--to", "2026-11-30", "--format", "csv", "--kind", "cmcd"]
    assert "1 cmcd rows" in export(data, *args, "--out", str(out))
    with out.open() as f:
        (record,) = list(csv.DictReader(f))
    assert record["cmcd_br"] == "900" and record["date"] == "2026-11-02"
    empty = tmp_path / "none.csv"
    args = ["--from", "2025-01-01", "--to", "2025-01-02", "--format", "csv"]
    assert "0 events rows from 0 lake files" in export(data, *args, "--out", str(empty))
    assert empty.read_text().splitlines()[0].startswith("event_id,view_id,type,ts,")
    bad = CliRunner().invoke(
        app, ["analytics", "export", "--from", "2026-11-02", "--to", "2026-11-01",
              "--out", str(empty), "--data-dir", str(data)],
    )  # fmt: skip
    assert bad.exit_code == 1 and "--to is before --from" in bad.output


def test_the_views_query_reads_only_the_partitions_of_its_range(tmp_path: Path) -> None:
    data = tmp_path / "data"
    lake = lake_in(data)
    assert [v["view_id"] for v in list_views(lake, ["pb"])] == ["view2", "view1", "view0"]
    nov2 = list_views(lake, ["pb"], since=date(2026, 11, 2), until=date(2026, 11, 2))
    assert [(v["view_id"], v["events"]) for v in nov2] == [("view1", 2)]  # its replay: once
    # a file of Nov 1 that no reader could open: a range without that day never opens it
    (nov1,) = (data / "objects/analytics/events").glob("date=2026-11-01/*/*.parquet")
    nov1.write_bytes(b"not parquet")
    later = list_views(lake, ["pb"], since=date(2026, 11, 2))
    assert [v["view_id"] for v in later] == ["view2", "view1"]
    assert list_views(lake, ["pb"], until=date(2026, 10, 31)) == []
