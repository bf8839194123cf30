"""What the `mediaplane admin` commands do (the CLI only wires arguments to these)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mediaplane.db import Database, migrate

from ._models import Role, User
from ._users import create_user

if TYPE_CHECKING:
    from mediaplane.config import Settings


def create_user_command(settings: Settings, email: str, password: str, role: Role | str) -> User:
    """Migrate the database if needed and create a local user whose address counts as
    verified (an operator made it). Raises :class:`AccountsError` subclasses."""
    migrate(settings.effective_database_url)
    db = Database(settings.effective_database_url)
    try:
        with db.session() as s:
            return create_user(s, email, password, role, email_verified=True)
    finally:
        db.dispose()
