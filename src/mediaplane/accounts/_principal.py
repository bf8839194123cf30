"""Who is asking: one :class:`Principal` per request, resolved by :func:`current_principal`.

The credentials a request may carry, in the order they are tried:

- ``Authorization: Bearer <admin token>`` or an API key without a user: the install
  itself (role ``admin``), limited by the key's scope;
- ``Authorization: Bearer <API key of a user>``: that user, limited by the key's scope;
- ``Authorization: Bearer <JWT access token>``: that user (no scope limit beyond the role);
- a web session cookie (the marked place in :func:`_resolve`): that user;
- nothing: :data:`ANONYMOUS`.

Credentials that are presented but not good (unknown, revoked, expired, the user disabled)
are a 401, never a silent downgrade to anonymous. The user row is read on every request,
so disabling a user or changing a role takes effect at once, whatever the token says.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fastapi import Depends, Request

from mediaplane.errors import Forbidden
from mediaplane.http import ApiError, runtime_dep

from ._api_keys import KEY_PREFIX, verify_api_key
from ._app_tokens import TokenPolicy, verify_access_token
from ._errors import ApiKeyInvalid, TokenInvalid
from ._models import KeySource, Role, Scope, User
from ._sessions import ROLE_SCOPES, SESSION_COOKIE, session_for_api
from ._tokens import ensure_secret_key

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from mediaplane.runtime import Runtime

__all__ = [
    "ANONYMOUS",
    "INSTALL",
    "Principal",
    "authenticated",
    "check_scope",
    "current_principal",
    "require_admin",
    "require_role",
    "require_scope",
    "user_principal",
]


@dataclass(frozen=True)
class Principal:
    """The caller of one request.

    :param user_id: the signed-in user; None for anonymous and for the install itself
        (the admin token, an API key without a user).
    :param role: what the user (or the install: ``admin``) may do; None when anonymous.
    :param scope: the most an API key allows; ``admin`` for tokens and sessions (the role
        is the limit then); None when anonymous.
    :param via: how the caller was recognised (``admin_token``, ``api_key``,
        ``access_token``, ``session``, ``anonymous``) — for logs and audit.
    """

    user_id: str | None
    role: Role | None
    scope: Scope | None
    via: str

    @property
    def authenticated(self) -> bool:
        return self.role is not None

    @property
    def sees_everything(self) -> bool:
        """Admins (and the install) read every channel's assets and every upload."""
        return self.role is Role.ADMIN

    @property
    def is_admin(self) -> bool:
        """May use the admin routes: the admin role with an admin-scoped credential."""
        return self.role is Role.ADMIN and self.scope is Scope.ADMIN

    def allows(self, scope: Scope) -> bool:
        return self.scope is not None and self.scope.covers(scope)


ANONYMOUS = Principal(None, None, None, "anonymous")
#: The install acting for itself (the admin token): what CLI commands and jobs act as.
INSTALL = Principal(None, Role.ADMIN, Scope.ADMIN, "admin_token")


def user_principal(user: User) -> Principal:
    """The principal of a signed-in browser (what the pages act as): the user with the
    scope their role grants a session."""
    return Principal(user.id, user.role, ROLE_SCOPES[user.role], "session")


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": "Bearer"})


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise _unauthorized("Send an API token: Authorization: Bearer <token>.")
    return token


def _for_user(user: User | None, scope: Scope, via: str) -> Principal:
    if user is None or user.disabled:
        raise _unauthorized("The credentials are not valid (or the account is disabled).")
    return Principal(user.id, user.role, scope, via)


def _from_key(s: Session, token: str, admin_token: str) -> Principal:
    try:
        row = verify_api_key(s, token, Scope.READ, admin_token=admin_token)
    except ApiKeyInvalid as exc:
        raise _unauthorized(exc.message) from None
    if row.user_id is None:  # the admin token or a key of the install's own servers
        via = "admin_token" if row.source is KeySource.ADMIN_TOKEN else "api_key"
        return Principal(None, Role.ADMIN, row.scope, via)
    return _for_user(s.get(User, row.user_id), row.scope, "api_key")


def _from_access_token(s: Session, rt: Runtime, token: str) -> Principal:
    try:
        claims = verify_access_token(TokenPolicy(ensure_secret_key(rt.settings)), token)
    except TokenInvalid as exc:
        raise ApiError(401, exc.code, exc.message, {"WWW-Authenticate": "Bearer"}) from None
    return _for_user(s.get(User, claims.user_id), Scope.ADMIN, "access_token")


def _is_access_token(token: str, admin_token: str) -> bool:
    """A JWT (three dot-separated parts), not an API key nor the admin token."""
    if hmac.compare_digest(token.encode(), admin_token.encode()):
        return False
    return not token.startswith(KEY_PREFIX) and token.count(".") == 2


def _session_principal(request: Request) -> Principal | None:
    """The signed-in browser's user (with the session's CSRF token), or None without a
    session cookie."""
    if SESSION_COOKIE not in request.cookies:
        return None
    user, scope = session_for_api(request)
    return _for_user(user, scope, "session")


def _resolve(request: Request, rt: Runtime) -> Principal:
    token = _bearer(request)
    if token is None:
        return _session_principal(request) or ANONYMOUS
    admin_token: str = request.app.state.admin_token
    if len(token) > max(4096, len(admin_token)):  # no key or token is this long
        raise _unauthorized("The API token is not valid.")
    with rt.db.session() as s:
        if _is_access_token(token, admin_token):
            return _from_access_token(s, rt, token)
        return _from_key(s, token, admin_token)


def current_principal(request: Request, rt: Runtime = Depends(runtime_dep)) -> Principal:
    """Dependency: the request's :class:`Principal`, resolved once per request (cached on
    ``request.state``); :data:`ANONYMOUS` without credentials, 401 for bad ones."""
    cached = getattr(request.state, "principal", None)
    if isinstance(cached, Principal):
        return cached
    principal = _resolve(request, rt)
    request.state.principal = principal
    return principal


def authenticated(scope: Scope = Scope.READ) -> Callable[..., Principal]:
    """A dependency: a signed-in caller (401 otherwise) whose credential covers ``scope``
    (403 ``insufficient_scope`` otherwise)."""

    def dependency(principal: Principal = Depends(current_principal)) -> Principal:
        return check_scope(principal, scope)

    return dependency


def check_scope(principal: Principal, scope: Scope) -> Principal:
    if not principal.authenticated:
        raise _unauthorized("Sign in, or send a token: Authorization: Bearer <token>.")
    if not principal.allows(scope):
        raise Forbidden(
            f"This credential's scope is {principal.scope}; this needs {scope}.",
            "insufficient_scope",
        )
    return principal


def require_role(*roles: Role, scope: Scope = Scope.READ) -> Callable[..., Principal]:
    """A dependency: a caller whose user role is one of ``roles`` (403
    ``insufficient_role`` otherwise), with a credential covering ``scope``."""

    def dependency(principal: Principal = Depends(current_principal)) -> Principal:
        check_scope(principal, scope)
        if principal.role not in roles:
            raise Forbidden(
                f"This needs the role {' or '.join(roles)}; you are {principal.role}.",
                "insufficient_role",
            )
        return principal

    return dependency


def require_scope(scope: Scope) -> Callable[..., Principal]:
    """A dependency: any signed-in caller whose credential covers ``scope``."""
    return authenticated(scope)


def require_admin(principal: Principal = Depends(current_principal)) -> Principal:
    """Dependency: the admin token, an admin-scoped key of the install, or an admin user
    with an admin-scoped credential (401 anonymous, 403 otherwise)."""
    check_scope(principal, Scope.ADMIN)
    if principal.role is not Role.ADMIN:
        raise Forbidden("This needs the admin role.", "insufficient_role")
    return principal
