"""Secrets never reach a message or a log: a failed migration names the database with
its password masked, and so do every URL-bearing error of the database and the stores."""

from __future__ import annotations

import os
import subprocess
import sys
import traceback
from pathlib import Path

import pytest
from sqlalchemy import text

from mediaplane.db import Database, DatabaseError, migrate
from mediaplane.storage import StorageError, open_store
from tests.support import PG_ADMIN_URL, port_open

PASSWORD = "Sup3r-Secret-pw"


def _unreachable_pg() -> str:
    """A PostgreSQL URL with a password that cannot work (a database of a role that does
    not exist, on the test server) — the server answers and refuses."""
    if not port_open("127.0.0.1", 5432):
        pytest.skip("PostgreSQL is not listening on 127.0.0.1:5432")
    host = PG_ADMIN_URL.split("@", 1)[1].split("/", 1)[0]
    return f"postgresql://nobody_here:{PASSWORD}@{host}/no_such_db"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://mp:pw@db:5432/mp", "postgresql://mp:***@db:5432/mp"),
        ("postgresql://mp:p@ss@db/mp", "postgresql://mp:***@db/mp"),
        ("amqp://guest:guest@127.0.0.1:5672//", "amqp://guest:***@127.0.0.1:5672//"),
        ("redis://:pw@h:6379/0", "redis://:***@h:6379/0"),
        (
            "postgresql://h/db?sslmode=require&password=x",
            "postgresql://h/db?sslmode=require&password=***",
        ),
        ("https://h/v.mp4?X-Amz-Signature=abc&a=1", "https://h/v.mp4?X-Amz-Signature=***&a=1"),
        ("sqlite:////data/mediaplane.sqlite", "sqlite:////data/mediaplane.sqlite"),
        ("https://user@host/", "https://user@host/"),
        ("not a url", "not a url"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    from mediaplane.config import redact_url

    assert redact_url(url) == shown


def test_redact_text_and_secrets() -> None:
    from mediaplane.config import redact

    text = f"connect to postgresql://u:{PASSWORD}@h/db failed; password {PASSWORD} refused"
    assert PASSWORD not in redact(text, PASSWORD)
    assert redact("token abc", "abc") == "token abc"  # too short to replace blindly


def test_failed_migration_masks_the_password() -> None:
    url = _unreachable_pg()
    with pytest.raises(DatabaseError) as info:
        migrate(url)
    printed = "".join(traceback.format_exception(info.value))
    assert PASSWORD not in printed
    assert "nobody_here:***@" in str(info.value)


def test_up_with_a_bad_database_prints_no_password(tmp_path: Path) -> None:
    """What an operator sees: `mediaplane up` against a database it cannot migrate."""
    url = _unreachable_pg()
    env = {
        **os.environ,
        "MEDIAPLANE_DATA_DIR": str(tmp_path),
        "MEDIAPLANE_DATABASE_URL": url,
        "MEDIAPLANE_PORT": "9",
    }
    out = subprocess.run(
        [sys.executable, "-m", "mediaplane", "up", "--no-worker"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert out.returncode != 0
    assert "could not migrate" in out.stdout + out.stderr
    assert PASSWORD not in out.stdout + out.stderr


def test_bad_database_url_is_not_echoed() -> None:
    with pytest.raises(DatabaseError) as info:
        Database(f"postgresql://u:{PASSWORD}@h:notaport/db")
    assert PASSWORD not in "".join(traceback.format_exception(info.value))
    assert PASSWORD not in repr(Database(f"postgresql://u:{PASSWORD}@127.0.0.1/db"))


@pytest.mark.parametrize(
    "url",
    [
        f"s3://AKIAEXAMPLE:{PASSWORD}@bucket/prefix",
        f"gs://user:{PASSWORD}@bucket",
        f"s3://bucket?endpoint=http://k:{PASSWORD}@h:9000&junk=1",
    ],
)
def test_storage_url_errors_mask_secrets(url: str) -> None:
    with pytest.raises(StorageError) as info:
        open_store(url)
    assert PASSWORD not in str(info.value)


def test_settings_repr_hides_credentials(tmp_path: Path) -> None:
    from mediaplane.config import Settings

    settings = Settings(
        data_dir=tmp_path,
        database_url=f"postgresql://u:{PASSWORD}@h/db",
        broker_url=f"amqp://u:{PASSWORD}@h//",
        admin_token=f"mp_{PASSWORD}",
    )
    assert PASSWORD not in repr(settings) and PASSWORD not in str(settings)


def test_new_sqlite_database_is_owner_only(tmp_path: Path) -> None:
    """The database holds upload state and job payloads (import URLs): 0600, and SQLite's
    WAL and shared-memory files follow the database file's mode."""
    path = tmp_path / "data" / "mediaplane.sqlite"
    old = os.umask(0)
    try:
        migrate(f"sqlite:///{path}")
        db = Database(f"sqlite:///{path}")
        with db.session() as s:
            s.execute(text("CREATE TABLE t (x INTEGER)"))
            s.execute(text("INSERT INTO t VALUES (1)"))
            modes = {p.name: p.stat().st_mode & 0o777 for p in path.parent.iterdir()}
        db.dispose()
    finally:
        os.umask(old)
    assert modes == {name: 0o600 for name in modes} and path.name in modes, modes
    assert f"{path.name}-wal" in modes
