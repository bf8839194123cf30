from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session, sessionmaker

from mediaplane.config import redact, redact_url

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).with_name("migrations")


class DatabaseError(Exception):
    """The database could not be reached or migrated."""


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _normalise(url: str) -> str:
    # psycopg 3 is the driver we ship; accept the plain scheme operators write.
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def _password(url: str) -> str | None:
    try:
        return make_url(url).password
    except (ArgumentError, ValueError):
        return None


def _scrubbed(exc: BaseException, url: str) -> str:
    """An error's message fit to print: the URL's password never in it."""
    return redact(str(exc), _password(url), _password(_normalise(url)))


class Database:
    """An engine plus a session factory for one database URL."""

    def __init__(self, url: str) -> None:
        self.url = _normalise(url)
        kwargs: dict[str, Any] = {}
        if self.url.startswith("sqlite"):
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        else:
            kwargs.update(pool_pre_ping=True, pool_size=5, max_overflow=10)
        try:
            self.engine: Engine = create_engine(self.url, **kwargs)
        except (ArgumentError, ValueError):  # the message may quote the URL, password and all
            raise DatabaseError(f"the database URL {redact_url(url)!r} is not valid") from None
        if self.url.startswith("sqlite"):
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits on success and rolls back on error."""
        with self.sessions() as s:
            try:
                yield s
                s.commit()
            except BaseException:
                s.rollback()
                raise

    def __repr__(self) -> str:
        return f"Database({redact_url(self.url)!r})"

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def dispose(self) -> None:
        self.engine.dispose()


def alembic_config(url: str) -> Config:
    # imported here: only the processes that migrate pay for alembic
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", _normalise(url).replace("%", "%%"))
    return cfg


def migrate(url: str) -> None:
    """Bring the schema at ``url`` up to the newest migration."""
    from alembic import command

    if url.startswith("sqlite:///"):
        _create_sqlite_file(Path(url.removeprefix("sqlite:///")))
    try:
        command.upgrade(alembic_config(url), "heads")
    except Exception as exc:  # alembic/SQLAlchemy raise many types; report one
        # The message and the chain are printed and logged: neither may carry the password.
        raise DatabaseError(
            f"could not migrate the database at {redact_url(url)}: {_scrubbed(exc, url)}"
        ) from None


def _create_sqlite_file(path: Path) -> None:
    """Create a new SQLite database file 0600 (SQLite would make it 0644, and its WAL and
    shared-memory files take the database file's mode)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
