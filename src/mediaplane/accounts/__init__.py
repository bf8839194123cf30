"""Accounts: API tokens (an admin token today; users, roles and OIDC come later).

Errors are HTTP 401s raised through :class:`mediaplane.http.ApiError`.
"""

from __future__ import annotations

from ._tokens import ensure_admin_token, require_admin

__all__ = ["ensure_admin_token", "require_admin"]
