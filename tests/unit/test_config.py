"""Settings: the log format, MEDIAPLANE_* names nothing reads, the README's table."""

from __future__ import annotations

import ast
import io
import os
import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from mediaplane.config import (
    MEANINGS,
    OTHER_ENV,
    OTHER_ENV_PREFIXES,
    RETIRED_ENV,
    Settings,
    misspelled_env,
    settings_table,
)
from mediaplane.ops import renders_json

ROOT = Path(__file__).resolve().parents[2]


def test_a_misspelled_variable_names_the_closest_setting() -> None:
    warnings = misspelled_env({"MEDIAPLANE_DATABSE_URL": "postgresql://db/x", "PATH": "/bin"})
    assert list(warnings) == ["MEDIAPLANE_DATABSE_URL"]
    assert "did you mean MEDIAPLANE_DATABASE_URL?" in warnings["MEDIAPLANE_DATABSE_URL"]
    assert (
        "MEDIAPLANE_X264_PRESET?"
        in misspelled_env({"MEDIAPLANE_X264PRESET": "fast"})["MEDIAPLANE_X264PRESET"]
    )


def test_an_unknown_variable_without_a_close_name_says_so() -> None:
    message = misspelled_env({"MEDIAPLANE_FROBNICATE": "1"})["MEDIAPLANE_FROBNICATE"]
    assert "not a Mediaplane setting" in message and "did you mean" not in message


def test_known_variables_are_not_reported() -> None:
    env = {f"MEDIAPLANE_{name.upper()}": "x" for name in Settings.model_fields}
    env |= dict.fromkeys(OTHER_ENV, "x") | {"MEDIAPLANE_TEST_PG": "postgresql://"}
    assert misspelled_env(env) == {}


def test_the_retired_log_json_points_at_log_format() -> None:
    assert (
        "MEDIAPLANE_LOG_FORMAT"
        in misspelled_env({"MEDIAPLANE_LOG_JSON": "1"})["MEDIAPLANE_LOG_JSON"]
    )


def test_every_mediaplane_variable_the_code_reads_is_known() -> None:
    """A name read outside Settings (CLI, tests, bench) must be in OTHER_ENV, or `up` would
    call it a typo."""
    known = {f"MEDIAPLANE_{n.upper()}" for n in Settings.model_fields} | OTHER_ENV
    known |= set(RETIRED_ENV)
    skip = {  # these name misspellings on purpose
        Path(__file__).resolve(),
        ROOT / "src" / "mediaplane" / "config.py",
        ROOT / "tests" / "integration" / "test_terminal.py",
    }
    found: dict[str, Path] = {}
    for folder in ("src", "tests", "bench", "scripts"):
        for path in (ROOT / folder).rglob("*"):
            if path.is_file() and path.suffix in {".py", ""} and path.resolve() not in skip:
                text = path.read_text(errors="replace")
                for name in re.findall(r"MEDIAPLANE_[A-Z0-9][A-Z0-9_]*[A-Z0-9]", text):
                    found.setdefault(name, path)
    unknown = {
        n: str(p)
        for n, p in found.items()
        if n not in known and not n.startswith(OTHER_ENV_PREFIXES)
    }
    assert not unknown, unknown


def test_log_format_is_checked() -> None:
    assert Settings(log_format="console").log_format == "console"
    with pytest.raises(ValidationError):
        Settings(log_format="yaml")  # type: ignore[arg-type]


def test_auto_means_json_unless_stderr_is_a_terminal() -> None:
    leader, follower = os.openpty()
    try:
        with os.fdopen(follower, "w", closefd=False) as tty:
            assert renders_json("auto", tty) is False
            assert renders_json("json", tty) is True
        assert renders_json("auto", io.StringIO()) is True
        assert renders_json("console", io.StringIO()) is False
    finally:
        os.close(leader)
        os.close(follower)


def test_every_setting_has_a_meaning_and_a_table_row() -> None:
    table = settings_table()
    for name in Settings.model_fields:
        row = next(r for r in table.splitlines() if r.startswith(f"| `MEDIAPLANE_{name.upper()}` "))
        meaning = row.rstrip(" |").rsplit("|", 1)[1].strip()
        assert meaning, f"{name}: add it to config.MEANINGS or a #: comment above the field"
    assert set(MEANINGS) <= set(Settings.model_fields), set(MEANINGS) - set(Settings.model_fields)


def test_readme_configuration_table_lists_every_setting() -> None:
    """README's table is config.settings_table() pasted in: every row, current defaults."""
    readme = (ROOT / "README.md").read_text().splitlines()
    missing = [row for row in settings_table().splitlines() if row not in readme]
    assert not missing, (
        "README.md's configuration table is out of date; paste the output of\n"
        "  python -c 'from mediaplane.config import settings_table; print(settings_table())'\n"
        "missing rows:\n" + "\n".join(missing)
    )


def test_every_setting_is_read_somewhere() -> None:
    """A setting nothing reads is a knob that does nothing (issue 6 found three): each field
    of Settings is read as an attribute somewhere in src/mediaplane (a property of Settings
    counts). A name that is also another object's attribute (``host``) passes on that."""
    read: set[str] = set()
    for path in (ROOT / "src" / "mediaplane").rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        read |= {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
    unread = sorted(set(Settings.model_fields) - read)
    assert not unread, f"settings nothing reads (read them or remove them): {unread}"
