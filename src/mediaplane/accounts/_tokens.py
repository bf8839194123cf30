from __future__ import annotations

import hmac
import os
import secrets
from typing import TYPE_CHECKING

from fastapi import Depends, Request

from mediaplane.http import ApiError, runtime_dep

if TYPE_CHECKING:
    from mediaplane.config import Settings
    from mediaplane.runtime import Runtime


def ensure_admin_token(settings: Settings) -> tuple[str, bool]:
    """The admin API token: MEDIAPLANE_ADMIN_TOKEN, else ``<data-dir>/admin-token``.

    Creates the file (mode 0600) on first start. Returns (token, created).
    """
    if settings.admin_token:
        return settings.admin_token, False
    path = settings.admin_token_file
    if path.is_file():
        return path.read_text().strip(), False
    path.parent.mkdir(parents=True, exist_ok=True)
    token = "mp_" + secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return token, True


def require_admin(request: Request, rt: Runtime = Depends(runtime_dep)) -> None:
    """Dependency: the request carries ``Authorization: Bearer <admin token>``."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    expected: str = request.app.state.admin_token
    if scheme.lower() != "bearer" or not token:
        raise ApiError(
            401,
            "unauthorized",
            "Send an API token: Authorization: Bearer <token>.",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not hmac.compare_digest(token.strip().encode(), expected.encode()):
        raise ApiError(
            401,
            "unauthorized",
            "The API token is not valid.",
            headers={"WWW-Authenticate": "Bearer"},
        )
