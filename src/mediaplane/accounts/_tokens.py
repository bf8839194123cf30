"""Server secrets kept on disk (the admin token, the token-signing secret) and the bearer
authorisation dependencies of the API."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import Depends, Request

from mediaplane.http import ApiError, runtime_dep

from ._api_keys import verify_api_key
from ._errors import ApiKeyInvalid, InsufficientScope
from ._models import ApiKey, Scope
from ._sessions import SESSION_COOKIE, session_api_key

if TYPE_CHECKING:
    from mediaplane.config import Settings
    from mediaplane.runtime import Runtime


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


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": "Bearer"})


def _authorise(request: Request, rt: Runtime, scope: Scope) -> ApiKey:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if not header and SESSION_COOKIE in request.cookies:  # a signed-in browser
        return session_api_key(request, scope)
    if scheme.lower() != "bearer" or not token:
        raise _unauthorized("Send an API token: Authorization: Bearer <token>.")
    admin_token: str = request.app.state.admin_token
    if len(token) > max(512, len(admin_token)):  # no key is this long: do not hash it
        raise _unauthorized("The API token is not valid.")
    try:
        with rt.db.session() as s:
            return verify_api_key(s, token, scope, admin_token=admin_token)
    except ApiKeyInvalid as exc:
        raise _unauthorized(exc.message) from None
    except InsufficientScope as exc:
        raise ApiError(403, exc.code, exc.message) from None


def require_scope(scope: Scope) -> Callable[..., ApiKey]:
    """A dependency: the request bears an API key (or the admin token) covering ``scope``."""

    def dependency(request: Request, rt: Runtime = Depends(runtime_dep)) -> ApiKey:
        return _authorise(request, rt, scope)

    return dependency


def require_admin(request: Request, rt: Runtime = Depends(runtime_dep)) -> None:
    """Dependency: ``Authorization: Bearer <admin token or an admin-scoped API key>``."""
    _authorise(request, rt, Scope.ADMIN)
