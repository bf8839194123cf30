"""The accounts package's errors: one root, a stable ``code`` on each."""

from __future__ import annotations


class AccountsError(Exception):
    """Root of every error the accounts package raises; ``code`` is stable for clients."""

    code = "accounts_error"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class InvalidAccountInput(AccountsError):
    """An e-mail address, password, role or scope we cannot take."""

    code = "invalid_request"


class EmailTaken(AccountsError):
    """Another account already uses this e-mail address."""

    code = "email_taken"


class AuthenticationFailed(AccountsError):
    """Wrong e-mail or password, or a disabled account (one message for all: no enumeration)."""

    code = "invalid_credentials"


class ApiKeyInvalid(AccountsError):
    """An API key that is unknown, revoked, or whose owner is disabled."""

    code = "unauthorized"


class InsufficientScope(AccountsError):
    """A valid API key whose scope does not cover the operation."""

    code = "insufficient_scope"


class TokenInvalid(AccountsError):
    """An access or refresh token that is malformed, expired, revoked or not ours."""

    code = "invalid_token"


class RefreshTokenReused(TokenInvalid):
    """A refresh token presented a second time: its whole family is now revoked."""

    code = "refresh_token_reused"


class NotFound(AccountsError):
    """No such user, API key or signing key."""

    code = "not_found"


class PlaybackTokenRejected(AccountsError):
    """A signed-playback token the origin must refuse; ``code`` is the reason
    (:data:`mediaplane.accounts.REJECTION_REASONS`)."""

    code = "invalid_playback_token"
