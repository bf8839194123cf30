"""The `mediaplane` command's help."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from mediaplane.cli import app


@pytest.mark.parametrize(
    ("option", "variable", "default"),
    [
        ("--host", "MEDIAPLANE_HOST", "127.0.0.1"),
        ("--port", "MEDIAPLANE_PORT", "8080"),
        ("--data-dir", "MEDIAPLANE_DATA_DIR", "mediaplane-data"),
    ],
)
def test_up_help_shows_each_default_and_variable(option: str, variable: str, default: str) -> None:
    result = CliRunner().invoke(app, ["up", "--help"], env={"COLUMNS": "200", "NO_COLOR": "1"})
    assert result.exit_code == 0, result.output
    line = next(ln for ln in result.output.splitlines() if f" {option} " in ln)
    assert variable in line and default in line, line


def test_worker_help_shows_the_concurrency_variable() -> None:
    result = CliRunner().invoke(app, ["worker", "--help"], env={"COLUMNS": "200"})
    assert "MEDIAPLANE_WORKER_CONCURRENCY" in result.output
    assert "--ready-fd" not in result.output  # internal to `up`
