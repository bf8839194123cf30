"""Database: the declarative base, engines and sessions, and Alembic migrations.

SQLite (WAL) by default, PostgreSQL by ``MEDIAPLANE_DATABASE_URL``.

Errors::

    DatabaseError
"""

from __future__ import annotations

from ._base import Base, str_enum, utcnow
from ._engine import Database, DatabaseError, migrate

__all__ = ["Base", "Database", "DatabaseError", "migrate", "str_enum", "utcnow"]
