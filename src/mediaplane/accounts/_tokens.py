"""Server secrets kept on disk: the admin token and the token-signing secret."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mediaplane.config import Settings


def _file_secret(path: Path, make: Callable[[], str]) -> tuple[str, bool]:
    """The secret in ``path``, created (mode 0600) with ``make()`` when absent.
    Returns (secret, created); two processes starting together agree on one."""
    if path.is_file():
        return path.read_text().strip(), False
    path.parent.mkdir(parents=True, exist_ok=True)
    value = make()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process won the race
        return path.read_text().strip(), False
    with os.fdopen(fd, "w") as f:
        f.write(value + "\n")
    return value, True


def ensure_admin_token(settings: Settings) -> tuple[str, bool]:
    """The admin API token: MEDIAPLANE_ADMIN_TOKEN, else ``<data-dir>/admin-token``.

    Creates the file (mode 0600) on first start. Returns (token, created).
    """
    if settings.admin_token:
        return settings.admin_token, False
    return _file_secret(settings.admin_token_file, lambda: "mp_" + secrets.token_urlsafe(32))


def ensure_secret_key(settings: Settings) -> str:
    """The secret that signs access tokens: MEDIAPLANE_SECRET_KEY, else
    ``<data-dir>/secret-key`` (created 0600 on first start, like the admin token)."""
    if settings.secret_key:
        return settings.secret_key
    return _file_secret(settings.data_path / "secret-key", lambda: secrets.token_urlsafe(48))[0]
