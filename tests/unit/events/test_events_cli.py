"""`mediaplane events tail`: the line a person reads, and a clear error without a database."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from typer.testing import CliRunner

from mediaplane.cli import _event_line, app
from mediaplane.events import Event


def test_a_line_names_the_type_the_object_its_title_and_status() -> None:
    event = Event(
        "video.asset.ready",
        "0b3c",
        datetime(2026, 12, 1, 12, 0, 5, tzinfo=UTC),
        "asset",
        "a1b2",
        {"id": "a1b2", "title": "Holiday", "status": "ready"},
    )
    line = _event_line(event)
    assert "video.asset.ready" in line
    assert "asset a1b2" in line
    assert line.endswith("'Holiday'  (ready)")


def test_tail_without_a_database_says_so(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "deeper"
    result = CliRunner().invoke(app, ["events", "tail", "--data-dir", str(missing)])
    assert result.exit_code == 1, result.output
    assert "cannot read the outbox" in result.output
